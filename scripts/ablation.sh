#!/usr/bin/env bash
# The recipe ablation of docs/ABLATION.md: every row trains the CPU demo's
# model (DCGAN-32, width 32, batch 64) for the same number of steps on each
# data set with each seed, then scores G with `vkgan eval`. Finished runs
# are skipped, so the script can be stopped and started again.
#
#   scripts/ablation.sh [ROW...]       rows: baseline diffaug hinge-sn
#                                      hinge-sn-diffaug r1 cond (default: all)
#   STEPS=300 SEEDS="1 2 3" OUT=runs/ablation VKGAN=./vkgan
set -euo pipefail
STEPS=${STEPS:-300}
SEEDS=${SEEDS:-"1 2 3"}
OUT=${OUT:-runs/ablation}
VKGAN=${VKGAN:-./vkgan}
EVAL_N=${EVAL_N:-1000}

# Each row's flags; R1 and the conditional model build on the best
# unconditional recipe of the rows before them.
flags() {
	case $1 in
	baseline) echo "" ;;
	diffaug) echo "-augment color,translation,cutout" ;;
	hinge-sn) echo "-loss hinge -sn -d-norm none" ;;
	hinge-sn-diffaug) echo "-loss hinge -sn -d-norm none -augment color,translation,cutout" ;;
	r1) echo "-loss hinge -sn -d-norm none -augment color,translation,cutout -r1 0.1 -r1-every 4" ;;
	cond) echo "-loss hinge -sn -d-norm none -augment color,translation,cutout -cond" ;;
	*) echo "ablation: unknown row $1" >&2; exit 2 ;;
	esac
}

# The data sets: the small one is the talk's cat faces' category (132
# images), the large one the whole emoji set (7,572 images).
datasets=${DATASETS:-"mammal all"}
dataflags() {
	case $1 in
	mammal) echo "-data emoji -category animal-mammal" ;;
	all) echo "-data emoji" ;;
	esac
}

rows=${*:-"baseline diffaug hinge-sn hinge-sn-diffaug r1 cond"}
mkdir -p "$OUT"
for data in $datasets; do
	for row in $rows; do
		if [ "$row" = cond ] && [ "$data" = mammal ]; then
			echo "== $data $row: skipped (animal-mammal is one class)"
			continue
		fi
		for seed in $SEEDS; do
			dir=$OUT/$data/$row/seed$seed
			if [ -f "$dir/eval.json" ]; then
				continue
			fi
			echo "== $data $row seed $seed ($(date +%H:%M:%S))"
			rm -rf "$dir"
			# shellcheck disable=SC2046
			"$VKGAN" train $(dataflags "$data") $(flags "$row") -size 32 -ngf 32 -ndf 32 -batch 64 \
				-steps "$STEPS" -seed "$seed" -log-every 25 -sample-every "$STEPS" -checkpoint-every "$STEPS" \
				-out "$dir" >"$OUT/$data-$row-$seed.log" 2>&1
			"$VKGAN" eval -run "$dir" -metrics swd -n "$EVAL_N" -ref-n 2000 -seed 7 -json >"$dir/eval.json.tmp" 2>>"$OUT/$data-$row-$seed.log"
			mv "$dir/eval.json.tmp" "$dir/eval.json"
			cat "$dir/eval.json"
		done
	done
done
