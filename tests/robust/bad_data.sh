#!/usr/bin/env bash
# Bad and unusual manifests, end to end through `reclf data check` and `reclf train --data`.
#   tests/robust/bad_data.sh [path/to/reclf]      (default bin/reclf; make test-asan passes its own)
# Every bad input must give exit 1 (never a crash) and a message naming CSV:ROW; --skip-bad must
# skip and count; valid but unusual input (CRLF, BOM, RFC 4180 quoting, 16-bit and 1x1 images, a
# report far longer than the model's sequence) must be accepted. Ends with "N passed, M failed".
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/bin/reclf}")
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/reclf_bad_data.XXXXXX)
trap 'chmod -R u+rwx "$T" 2>/dev/null; rm -rf "$T"' EXIT
cd "$T" || exit 1

# 8 good training rows with 64x64 images and masks, plus a 16x16 mask for the size mismatch
"$BIN" data synth --n 8 --split train --out d >/dev/null || { echo "data synth failed"; exit 1; }
"$BIN" data synth --n 1 --split train --size 16 --out small >/dev/null || exit 1
cp small/masks/00000.png d/masks/small16.png
cp "$HERE"/data/*.png d/images/
head -c 200 d/images/00002.png >d/images/truncated.png
echo "this is a text file, not a picture" >d/images/text.png
mkdir d/images/a_folder.png
HEADER=$(head -n1 d/manifest.csv)
good() { sed -n "$(($1 + 2))p" d/manifest.csv; } # data row i (0-based) of the synth manifest
LABELS="train,0,1,0,0,0"

# bad_csv NAME ROW: d/NAME.csv with data row 2 (CSV row 4) replaced by ROW
bad_csv() {
    { echo "$HEADER"; good 0; good 1; printf '%s\n' "$2"; for i in 3 4 5 6 7; do good $i; done; } >"d/$1.csv"
}
bad_csv bad_label "images/00002.png,Small nodule.,train,yes,0,0,0,0,"
# a quote left open runs to the end of the file when no other quote follows...
{ echo "$HEADER"; good 0; good 1; echo "images/00002.png,\"Nodule in the left lung.,$LABELS,"; echo "images/00003.png,Fine.,$LABELS,"; } >d/unterminated_quote.csv
# ...and otherwise swallows the rows up to the next quote, which leaves its row with too many fields
bad_csv unbalanced_quote "images/00002.png,\"Nodule in the left lung.,$LABELS,"
bad_csv missing_image "images/no_such.png,Small nodule.,$LABELS,"
bad_csv unreadable_image "images/a_folder.png,Small nodule.,$LABELS,"
bad_csv truncated_image "images/truncated.png,Small nodule.,$LABELS,"
bad_csv not_an_image "images/text.png,Small nodule.,$LABELS,"
bad_csv empty_report "images/00002.png,\"   \",$LABELS,"
bad_csv invalid_utf8 "$(printf 'images/00002.png,Nodule \xff\xfe here.,%s,' "$LABELS")"
bad_csv mask_size "images/00002.png,Small nodule.,$LABELS,masks/small16.png"
bad_csv too_few_fields "images/00002.png,Small nodule.,train,0,1"
bad_csv missing_mask "images/00002.png,Small nodule.,$LABELS,masks/no_such.png"
# a header without the nodule column
{ echo "image,report,split,opacity,effusion,pneumothorax,cardiomegaly,mask"; } >d/missing_column.csv
for i in 0 1 2 3; do good $i | awk -F, -v OFS=, '{ $5 = ""; print }' | sed 's/,,/,/' >>d/missing_column.csv; done
: >d/empty_file.csv

echo "== bad input: data check and train name the CSV row, exit 1, no crash"
# name / CSV row / what the message must say
cases=(
    "bad_label 4 column 'opacity': bad label value 'yes'"
    "unterminated_quote 4 column 'report': unterminated quote"
    "missing_image 4 column 'image': missing image file"
    "unreadable_image 4 column 'image': .*(read error|cannot open|unreadable)"
    "truncated_image 4 column 'image': .*truncated or corrupt PNG"
    "not_an_image 4 column 'image': .*not an image"
    "empty_report 4 column 'report': empty report"
    "invalid_utf8 4 column 'report': invalid UTF-8"
    "mask_size 4 column 'mask': mask 'masks/small16.png' is 16x16 but image 'images/00002.png' is 64x64"
    "unbalanced_quote 4 too many fields"
    "too_few_fields 4 too few fields \\(5, header has 9; column 'effusion' is missing\\)"
    "missing_mask 4 column 'mask': missing mask file"
    "missing_column 1 missing column 'nodule'"
    "empty_file 1 empty file"
)
for c in "${cases[@]}"; do
    read -r name row what <<<"$c"
    csv="$T/d/$name.csv"
    expect_error "data check $name" "$csv:$row: $what" "$BIN" data check "$csv"
    rm -rf "run_$name"
    expect_error "train $name" "^reclf train: $csv:$row: $what" \
        "$BIN" train --model convirt --batch 4 --steps 2 --quiet --data "$csv" --out "run_$name"
done
if [ "$(id -u)" -ne 0 ]; then # root reads any file: the mode test means nothing there
    bad_csv mode_000 "images/mode000.png,Small nodule.,$LABELS,"
    cp d/images/00002.png d/images/mode000.png && chmod 000 d/images/mode000.png
    expect_error "data check mode_000" "mode_000.csv:4: column 'image': unreadable image file" "$BIN" data check "$T/d/mode_000.csv"
fi

echo "== --skip-bad: bad rows are skipped and counted"
# every row problem found at load (fields, labels, files) in one file, after the 8 good rows
{
    echo "$HEADER"
    for i in 0 1 2 3 4 5 6 7; do good $i; done
    echo "images/00002.png,Small nodule.,train,yes,0,0,0,0,"            # row 10
    echo "images/no_such.png,Small nodule.,$LABELS,"                    # row 11
    echo "images/a_folder.png,Small nodule.,$LABELS,"                   # row 12 (decoded later)
    echo "images/00002.png,\"   \",$LABELS,"                            # row 13
    printf 'images/00002.png,Nodule \xff here.,%s,\n' "$LABELS"         # row 14
    echo "images/00002.png,Small nodule.,train,0,1"                     # row 15
    echo "images/00002.png,Small nodule.,$LABELS,masks/no_such.png"     # row 16
} >d/many_bad.csv
csv="$T/d/many_bad.csv"
expect_error "data check many_bad without --skip-bad fails" "6 rows skipped at load, 1 images or masks unusable" \
    "$BIN" data check "$csv"
expect_ok "data check --skip-bad counts 6 skipped, 1 unusable" "^7 problems \(6 rows skipped at load, 1 images or masks unusable\)" \
    "$BIN" data check "$csv" --skip-bad
for r in 10 11 12 13 14 15 16; do
    check "data check lists row $r" 'grep -qE "^problem: $csv:$r: " <<<"$out"'
done
# without --skip-bad training stops at the first bad row; with it, it skips and says how many
expect_error "train many_bad stops at row 10" "^reclf train: $csv:10: column 'opacity'" \
    "$BIN" train --model convirt --batch 4 --steps 2 --quiet --data "$csv" --out run_many
# the folder row passes the load-time checks: keep it out of the training run with a copy without it
grep -av a_folder d/many_bad.csv >d/many_bad_load.csv
csv="$T/d/many_bad_load.csv"
rm -rf run_many
expect_ok "train --skip-bad skips 6 rows and trains" "skipped 6 bad manifest rows \(--skip-bad\)" \
    "$BIN" train --model convirt --batch 4 --steps 2 --quiet --skip-bad --data "$csv" --out run_many
check "train --skip-bad wrote a checkpoint" '[ -s run_many/checkpoint.safetensors ]'
# rows whose file is there but does not decode are counted by data check --skip-bad
{ echo "$HEADER"; for i in 0 1 2 3; do good $i; done
  echo "images/truncated.png,Small nodule.,$LABELS,"
  echo "images/text.png,Small nodule.,$LABELS,"
  echo "images/00002.png,Small nodule.,$LABELS,masks/small16.png"; } >d/undecodable.csv
expect_ok "data check --skip-bad counts 3 undecodable rows" "3 problems \(0 rows skipped at load, 3 images or masks unusable\)" \
    "$BIN" data check "$T/d/undecodable.csv" --skip-bad

echo "== valid but unusual input is accepted"
# check_valid NAME ROWS: data check loads ROWS rows with no problem and 2 training steps run
check_valid() {
    local name=$1 rows=$2 csv="$T/d/$1.csv"
    expect_ok "data check $name" "$rows rows loaded" "$BIN" data check "$csv"
    check "data check $name: no problem" 'grep -q "^0 problems" <<<"$out"'
    rm -rf "run_$name"
    expect_ok "train $name" "done: 2 steps" "$BIN" train --model convirt --batch 4 --steps 2 --data "$csv" --out "run_$name"
}
sed 's/$/\r/' d/manifest.csv >d/crlf.csv
check_valid crlf 8
{ printf '\xef\xbb\xbf'; cat d/manifest.csv; } >d/bom.csv
check_valid bom 8
{
    printf '\xef\xbb\xbf"image","report","split",opacity,nodule,effusion,pneumothorax,cardiomegaly,mask\r\n'
    printf '"images/00000.png","Opacity, left lower zone; ""quoted"" words,\nand a second line.\r\nThird.",train,1,0,0,0,0,masks/00000.png\r\n'
    printf 'images/00001.png,"Comma, comma, comma",train,0,1,0,-1,,masks/00001.png\r\n'
    printf 'images/00002.png,"Quote at the end """,train,0,0,0,0,1.0,\r\n'
    printf 'images/00003.png,"",train,0,0,0,0,0,\r\n' | sed 's/""/"Line one\nline two"/'
    printf '\r\n'
    printf 'images/00004.png,"No trailing newline, and a blank line before",train,0,0,0,0,0,' ; } >d/quoted.csv
check_valid quoted 5
{ echo "$HEADER"
  echo "images/grey16_32x32.png,16-bit grey ramp.,$LABELS,"
  echo "images/rgba16_8x8.png,16-bit RGBA.,$LABELS,"
  echo "images/one_pixel.png,One pixel.,$LABELS,"
  echo "images/one_pixel.png,One pixel again.,$LABELS,"; } >d/small_images.csv
check_valid small_images 4
long=$(for i in $(seq 3000); do printf 'the right lower zone opacity is larger than before, '; done)
{ echo "$HEADER"; for i in 0 1 2; do good $i; done; echo "images/00003.png,\"$long\",$LABELS,"; } >d/long_report.csv
check_valid long_report 4
check "long report is ${#long} bytes" '[ "${#long}" -gt 100000 ]'

summary
