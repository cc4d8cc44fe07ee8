# Helpers shared by the tests/robust/*.sh scripts (sourced, not run).
#   check NAME COND [DETAIL...]   counts a pass when COND (a shell expression) is true
#   run CMD...                    runs CMD, sets $rc and $out (stdout + stderr)
#   crashed                       true when the last run died of a signal or a sanitizer report
#   summary                       prints "N passed, M failed" and returns non-zero on failures
# Every script runs bin/reclf with an explicit OMP_WAIT_POLICY so that it does not re-execute
# itself (runtime/main.c), which keeps valgrind and the sanitizers on one process.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
n_pass=0
n_fail=0
rc=0
out=""

run() {
    out=$("$@" 2>&1)
    rc=$?
}

# a signal (rc >= 128) or a sanitizer / glibc report is a crash, whatever the exit code
crashed() {
    [ "$rc" -ge 128 ] || grep -qE 'Sanitizer|runtime error:|double free|corrupted|Segmentation fault' <<<"$out"
}

check() {
    # underscored locals: $cond is evaluated here and may use the caller's variables
    local _name=$1 _cond=$2
    shift 2
    if eval "$_cond"; then
        n_pass=$((n_pass + 1))
        echo "ok   $_name"
    else
        n_fail=$((n_fail + 1))
        echo "FAIL $_name  [$_cond]"
        for d in "$@"; do printf '     %s\n' "$d"; done
        printf '     exit %s; output:\n' "$rc"
        head -c 1500 <<<"$out" | sed 's/^/     | /'
    fi
}

# expect_error NAME PATTERN CMD...: exits 1 (an error, not a crash) and prints PATTERN (grep -E)
expect_error() {
    local _n=$1 pat=$2
    shift 2
    run "$@"
    check "$_n" '[ "$rc" -eq 1 ] && ! crashed && grep -qE -- "$pat" <<<"$out"' "expected exit 1 and /$pat/"
}

# expect_ok NAME PATTERN CMD...: exits 0 and prints PATTERN
expect_ok() {
    local _n=$1 pat=$2
    shift 2
    run "$@"
    check "$_n" '[ "$rc" -eq 0 ] && ! crashed && grep -qE -- "$pat" <<<"$out"' "expected exit 0 and /$pat/"
}

summary() {
    echo "$n_pass passed, $n_fail failed"
    [ "$n_fail" -eq 0 ]
}
