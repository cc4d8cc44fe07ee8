#!/usr/bin/env bash
# Damaged and mismatched checkpoints: `reclf train --resume` and `reclf dump` must refuse them
# with exit 1 and a message that names the file and the tensor at fault, and must leave the file
# as it was. (That the reader never reads out of bounds, whatever the bytes, is fuzzed:
# tests/fuzz/fuzz_safetensors.c.)
#   tests/robust/bad_checkpoint.sh [path/to/reclf]
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "${1:-$ROOT/bin/reclf}")
. "$HERE/lib.sh"
T=$(mktemp -d /tmp/reclf_bad_ckpt.XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T" || exit 1

"$BIN" data synth --n 8 --split train --out d >/dev/null || { echo "data synth failed"; exit 1; }
"$BIN" data synth --n 4 --split val --out v >/dev/null || exit 1
TRAIN=(--model convirt --batch 4 --quiet --data d/manifest.csv)
"$BIN" train "${TRAIN[@]}" --steps 2 --out good >/dev/null || { echo "training the good checkpoint failed"; exit 1; }
"$BIN" train --model gloria --batch 4 --quiet --data d/manifest.csv --steps 1 --out other >/dev/null || exit 1
GOOD=good/checkpoint.safetensors

# st_edit OUT PERL: OUT is the good checkpoint with the perl code PERL applied to its JSON header
# in $_ (the header length is rewritten to match; the data section is kept as it is)
st_edit() {
    perl -e 'open my $f, "<:raw", $ARGV[0] or die "$ARGV[0]: $!"; local $/; my $b = <$f>;
             my $n = unpack("Q<", substr($b, 0, 8)); $_ = substr($b, 8, $n); my $d = substr($b, 8 + $n);
             '"$2"';
             open my $o, ">:raw", $ARGV[1] or die; print $o pack("Q<", length), $_, $d' "${3:-$GOOD}" "$1"
}
size=$(stat -c %s $GOOD)
head -c 5 $GOOD >truncated_5.st
head -c 1000 $GOOD >truncated_header.st
head -c $((size / 2)) $GOOD >truncated_data.st
{ printf '\xff\xff\xff\xff\xff\xff\xff\xff'; tail -c +9 $GOOD; } >header_length_overflow.st
B='"image.stem_gn.bias":\{"dtype":"F32","shape":\[32\],"data_offsets":\[1408,1536\]\}'
st_edit offsets_overflow.st "s/$B/\"image.stem_gn.bias\":{\"dtype\":\"F32\",\"shape\":[32],\"data_offsets\":[9223372036854775680,9223372036854775807]}/ or die"
st_edit offsets_past_end.st "s/(\"image.stem_gn.bias\".*?data_offsets\":)\[1408,1536\]/\$1\[$((size - 64)),$((size + 64))]/ or die"
st_edit offsets_reversed.st "s/(\"image.stem_gn.bias\".*?data_offsets\":)\[1408,1536\]/\$1\[1536,1408]/ or die"
st_edit offsets_negative.st "s/(\"image.stem_gn.bias\".*?data_offsets\":)\[1408,1536\]/\$1\[-128,0]/ or die"
st_edit dtype_i32.st 's/("image.stem_gn.bias":\{"dtype":)"F32"/$1"I32"/ or die'
st_edit dtype_f16.st 's/("image.stem_gn.bias":\{"dtype":)"F32"/$1"F16"/ or die'
st_edit dtype_unknown.st 's/("image.stem_gn.bias":\{"dtype":)"F32"/$1"F31"/ or die'
st_edit shape.st 's/("image.stem.weight":\{"dtype":"F32","shape":)\[32,1,3,3\]/$1\[32,9\]/ or die'
st_edit missing_tensor.st 's/"image.stem_gn.bias":/"image.stem_gn.bias_renamed":/ or die'
st_edit missing_moment.st 's/"optim.v.image.stem.bias":/"optim.v.image.stem.bias_renamed":/ or die'
st_edit not_json.st 's/^\{/[/ or die'
st_edit bad_step.st 's/"step":"2"/"step":"-7"/ or die'
st_edit no_format.st 's/"format":"reclf-checkpoint-1",// or die'
cp other/checkpoint.safetensors other_model.st
# a model whose parameters this file lacks, for dump (which takes the model from the file)
st_edit other_model_dump.st 's/"model":"convirt"/"model":"reclf"/ or die'

# name | what train --resume and dump must say (grep -E; the file name is prefixed below)
# a tensor name in the pattern is the tensor the message must name
cases=(
    "truncated_5|file of 5 bytes is too short for the 8-byte header length"
    "truncated_header|header length [0-9]+ runs past the end of the file \\(1000 bytes\\)"
    "truncated_data|tensor '[^']+': data offsets \\[[0-9]+, [0-9]+\\] end past the data section"
    "header_length_overflow|header length 18446744073709551615 is absurd"
    "offsets_overflow|tensor 'image.stem_gn.bias': data offsets \\[9223372036854775680, 9223372036854775807\\] end past the data section"
    "offsets_past_end|tensor 'image.stem_gn.bias': data offsets .* end past the data section"
    "offsets_reversed|tensor 'image.stem_gn.bias': data offsets \\[1536, 1408\\] begin after they end"
    "offsets_negative|tensor 'image.stem_gn.bias': negative data offsets"
    "dtype_i32|tensor 'image.stem_gn.bias' has dtype I32, expected F32"
    "dtype_f16|tensor 'image.stem_gn.bias': data offsets give 128 bytes, but F16 \\[32\\] needs 64"
    "dtype_unknown|tensor 'image.stem_gn.bias': unknown dtype \"F31\""
    "shape|tensor 'image.stem.weight' has shape \\[32, 9\\], expected \\[32, 1, 3, 3\\]"
    "missing_tensor|tensor 'image.stem_gn.bias' is missing"
    "not_json|header is (not valid JSON|JSON but not an object)"
    "bad_step|metadata 'step' is \"-7\""
    "no_format|checkpoint format \"\\(none\\)\""
)
echo "== train --resume and dump refuse damaged checkpoints"
for c in "${cases[@]}"; do
    name=${c%%|*}
    what=${c#*|}
    f=$name.st
    sum=$(md5sum <"$f")
    mkdir -p "r_$name" && cp "$f" "r_$name/checkpoint.safetensors"
    expect_error "train --resume $name" "^reclf train: r_$name/checkpoint.safetensors: $what" \
        "$BIN" train "${TRAIN[@]}" --steps 4 --resume --out "r_$name"
    check "train --resume $name left the file alone" '[ "$(md5sum <"r_$name/checkpoint.safetensors")" = "$sum" ]'
    expect_error "dump $name" "^reclf dump: $f: $what" \
        "$BIN" dump --ckpt "$f" --out "state_$name.st" --batch 2 --data v/manifest.csv
    check "dump $name wrote nothing" '[ ! -e "state_$name.st" ]'
done

echo "== checkpoints of another model, and without optimiser state"
mkdir -p r_other && cp other_model.st r_other/checkpoint.safetensors
expect_error "train --resume with a gloria checkpoint" "checkpoint of model gloria, expected convirt" \
    "$BIN" train "${TRAIN[@]}" --steps 4 --resume --out r_other
expect_error "dump of convirt tensors labelled reclf" "other_model_dump.st: tensor '[^']+' is missing" \
    "$BIN" dump --ckpt other_model_dump.st --out state_other.st --batch 2 --data v/manifest.csv
mkdir -p r_moment && cp missing_moment.st r_moment/checkpoint.safetensors
expect_error "train --resume without an AdamW moment" "tensor 'optim.v.image.stem.bias' is missing: the checkpoint has no optimiser state" \
    "$BIN" train "${TRAIN[@]}" --steps 4 --resume --out r_moment
expect_ok "dump of a checkpoint without moments (weights suffice)" "loss [0-9.]+" \
    "$BIN" dump --ckpt missing_moment.st --out state_moment.st --batch 2 --data v/manifest.csv
mkdir -p r_none
expect_error "train --resume with no checkpoint" "--resume: no checkpoint at r_none/checkpoint.safetensors" \
    "$BIN" train "${TRAIN[@]}" --steps 4 --resume --out r_none

echo "== the good checkpoint still works"
expect_ok "dump of the good checkpoint" "loss [0-9.]+, [0-9]+ parameter gradients" \
    "$BIN" dump --ckpt $GOOD --out state_good.st --batch 2 --data v/manifest.csv
expect_ok "train --resume of the good checkpoint" "resuming good/checkpoint.safetensors from step 2 of 3" \
    "$BIN" train --model convirt --batch 4 --data d/manifest.csv --steps 3 --resume --out good
summary
