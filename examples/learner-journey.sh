#!/usr/bin/env bash
# A worked example of the course metrics aggregator, on the embedded default (no server):
# publish the demo course, open a batch, enrol two learners, replay their progress events, and look at
# progress, unit metrics, AUDIT events, the events kept because they were bad, the TPD report of the
# batch and a user group of the learners below 50%.
# Run it with `make example` (or `bash examples/learner-journey.sh` once `make install` has run).
set -euo pipefail
cd "$(dirname "$0")/.."
export COURSEINFRA_HOME="${COURSEINFRA_HOME:-.courseinfra/example}"
rm -rf "$COURSEINFRA_HOME"
ci() { .venv/bin/courseinfra "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "publish examples/democourse.json (required leaves: resource1-3; resource4 is optional)"
ci content publish examples/democourse.json > /dev/null && echo published
step "open batch demobatch and enrol learner-1 and learner-2"
ci batches create --course democourse --batch demobatch --name "Demo batch" > /dev/null
ci enrol learner-1 demobatch > /dev/null
ci enrol learner-2 demobatch > /dev/null && echo enrolled
step "ingest examples/progress-events.jsonl (6 events: 4 good, 1 for a learner not enrolled, 1 with status 5)"
ci ingest examples/progress-events.jsonl || echo "(exit code $?: some events failed and were kept)"
step "learner-1's enrolment"
ci enrolments get learner-1 democourse demobatch
step "learner-2's course and unit metrics"
ci activity get learner-2 democourse demobatch
step "AUDIT events of learner-1, each exactly once"
ci audit list --user learner-1
step "replay the same events: nothing new is emitted"
ci ingest examples/progress-events.jsonl > /dev/null 2>&1 || true
echo "AUDIT events of learner-1 now: $(ci audit list --user learner-1 | wc -l)"
step "events kept because they failed"
ci failed list

step "the user directory: import examples/users.csv (names and emails for reports, facts for groups)"
ci users import examples/users.csv
step "TPD course report of demobatch (democourse's framework is TPD): CSV, summary, chart"
ci reports generate --as-of 2026-11-25 > /dev/null
cat "$COURSEINFRA_HOME/reports/2026-11-25/demobatch.csv"
ci reports batches --as-of 2026-11-25
step "a user group kept current by progress: learners of democourse below 50% in demobatch"
ci groups create low-progress --name "Below 50% in demobatch" --scope course:democourse \
  --criteria examples/low-progress-group.json > /dev/null
ci groups members low-progress
step "why is learner-1 (not) in it?"
ci groups explain low-progress learner-1
