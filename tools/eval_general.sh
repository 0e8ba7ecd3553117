#!/usr/bin/env bash
# Zero-shot evaluation of one map-conditioned model (issue 15's must-show), on any machine:
#   the four shipped layouts (EPISODES a setting; layout k's seeds from SEED + k x EPISODES, as the suite gives every
#   layout and map its own: risky_nav.episode_seeds), and the generated test maps (maps/test:
#   seeds 1,000,000..1,000,049, never trained on; MAP_EPISODES a setting), pooled into one table per map kind.
#   bc: one map-conditioned behaviour-cloning policy on every layout and test map, as the general model: BC=<policy>
#   (python -m rs_diffuser_ros.baselines.behaviour_cloning --map-conditioned ..., docs/training.md), by default the
#   shipped rs_diffuser_ros/models/behaviour_cloning_general.safetensors; BC=specialists gives each shipped layout
#   its own per-layout policy instead and the test maps no bc (a per-layout policy knows only its own layout).
#
#   tools/eval_general.sh MODEL OUT     (env: EPISODES=200 MAP_EPISODES=20 SEED=1000 WORKERS=<cores> BC=<policy>)
#   EVAL_ARGS: more arguments of every eval.suite run, e.g. the controller's "--route-candidates 8 --carry-plan true"
#
# Writes OUT/shipped/<layout>/, OUT/shipped/summary.md, OUT/test_maps/<map>/, OUT/test_maps/pooled/results.md.
set -euo pipefail
model="$1"; out="$2"
episodes=${EPISODES:-200}; map_episodes=${MAP_EPISODES:-20}; seed=${SEED:-1000}; workers=${WORKERS:-$(nproc)}
M=rs_diffuser_ros/models
[[ -d maps/test ]] || python -m risky_nav.generate --split test --out maps/test
BC=${BC:-$M/behaviour_cloning_general.safetensors}; [[ $BC == specialists ]] && BC=
runs=(); bc=()
for layout in default two_risks narrow_corridor risk_near_goal; do
  runs+=("$layout=$model")
  bc+=("$layout=${BC:-$M/behaviour_cloning$([[ $layout == default ]] || echo _$layout).safetensors}")
done
map_bc=(); [[ -n "${BC:-}" ]] && map_bc=(bc --bc-checkpoint "$BC")
start=$SECONDS
python -m rs_diffuser_ros.eval.suite --runs "${runs[@]}" --bc-runs "${bc[@]}" --settings averse:0.1 neutral \
  seeking:0.1 unguided bc --episodes "$episodes" --seed "$seed" --workers "$workers" --out "$out/shipped" --no-progress \
  ${EVAL_ARGS:-}
echo "shipped layouts: $((SECONDS - start)) s"
start=$SECONDS
maps=(); for f in maps/test/*.yaml; do maps+=("$f=$model"); done
python -m rs_diffuser_ros.eval.suite --runs "${maps[@]}" --settings averse:0.1 neutral seeking:0.1 unguided "${map_bc[@]}" \
  --episodes "$map_episodes" --seed "$seed" --workers "$workers" --max-paths 10 --out "$out/test_maps" --no-progress \
  ${EVAL_ARGS:-} >/dev/null
python -m rs_diffuser_ros.eval.pooled "$out"/test_maps/gen*/ --group-by-kind --per-map --tail --out "$out/test_maps/pooled"
echo "test maps: $((SECONDS - start)) s"
