#!/usr/bin/env bash
# A monthly billing budget with alert thresholds for the project: set it up
# before the first paid run (Vertex training, Dataflow, endpoints). Billing
# sends e-mail to the billing account's admins at each threshold (and, with
# BUDGET_PUBSUB_TOPIC, a Pub/Sub message you can act on). A budget alerts; it
# does not stop spending.
#
#   BILLING_ACCOUNT=012345-6789AB-CDEF01 PROJECT=my-project BUDGET_AMOUNT=50 infra/budget.sh
#
# Optional: BUDGET_CURRENCY (default USD; must be the billing account's),
# BUDGET_THRESHOLDS (fractions of the amount actually spent, default
# "0.5 0.9 1.0"), BUDGET_FORECAST_THRESHOLD (fraction of the amount the
# month's forecast may reach, default 1.0; empty for none),
# BUDGET_PUBSUB_TOPIC (projects/P/topics/T), BUDGET_NAME (default
# "fmnist-tfx PROJECT"). Idempotent: a budget with that name on the account
# is left as it is. Needs roles/billing.costsManager on the billing account.
set -euo pipefail

die() { echo "error: $*" >&2; exit 2; }

[ -n "${BILLING_ACCOUNT:-}" ] || die "set BILLING_ACCOUNT (gcloud billing accounts list)"
[ -n "${PROJECT:-}" ] || die "set PROJECT to the GCP project ID"
[ -n "${BUDGET_AMOUNT:-}" ] || die "set BUDGET_AMOUNT, e.g. 50 (per month, in BUDGET_CURRENCY)"
[[ "${BILLING_ACCOUNT}" =~ ^[0-9A-F]{6}-[0-9A-F]{6}-[0-9A-F]{6}$ ]] ||
  die "BILLING_ACCOUNT '${BILLING_ACCOUNT}' is not a billing account ID like 012345-6789AB-CDEF01"
[[ "${BUDGET_AMOUNT}" =~ ^[0-9]+(\.[0-9]{1,2})?$ ]] && [[ ! "${BUDGET_AMOUNT}" =~ ^0+(\.0+)?$ ]] ||
  die "BUDGET_AMOUNT '${BUDGET_AMOUNT}' must be a positive amount like 50 or 49.99"
CURRENCY="${BUDGET_CURRENCY:-USD}"
[[ "${CURRENCY}" =~ ^[A-Z]{3}$ ]] || die "BUDGET_CURRENCY '${CURRENCY}' is not a currency code like USD"
THRESHOLDS="${BUDGET_THRESHOLDS-0.5 0.9 1.0}"
FORECAST="${BUDGET_FORECAST_THRESHOLD-1.0}"
NAME="${BUDGET_NAME:-fmnist-tfx ${PROJECT}}"
[ "${#NAME}" -le 60 ] || die "BUDGET_NAME must be at most 60 characters"

fraction_ok() { [[ "$1" =~ ^[0-9]*\.?[0-9]+$ ]] && awk -v p="$1" 'BEGIN { exit !(p > 0 && p <= 10) }'; }
rules=()
for p in ${THRESHOLDS}; do
  fraction_ok "${p}" || die "threshold '${p}' must be a fraction of the amount in (0, 10], e.g. 0.9"
  rules+=("--threshold-rule=percent=${p}")
done
if [ -n "${FORECAST}" ]; then
  fraction_ok "${FORECAST}" || die "BUDGET_FORECAST_THRESHOLD '${FORECAST}' must be a fraction in (0, 10]"
  rules+=("--threshold-rule=percent=${FORECAST},basis=forecasted-spend")
fi
[ "${#rules[@]}" -gt 0 ] || die "no threshold: set BUDGET_THRESHOLDS"
notify=()
if [ -n "${BUDGET_PUBSUB_TOPIC:-}" ]; then
  [[ "${BUDGET_PUBSUB_TOPIC}" =~ ^projects/[^/]+/topics/[^/]+$ ]] ||
    die "BUDGET_PUBSUB_TOPIC must look like projects/PROJECT/topics/TOPIC"
  notify=("--notifications-rule-pubsub-topic=${BUDGET_PUBSUB_TOPIC}")
fi

existing="$(gcloud billing budgets list --billing-account="${BILLING_ACCOUNT}" \
  --format='value(name,displayName)' | awk -F'\t' -v n="${NAME}" '$2 == n { print $1 }')"
if [ -n "${existing}" ]; then
  echo "budget '${NAME}' exists (${existing}); left as it is"
  exit 0
fi

gcloud billing budgets create --billing-account="${BILLING_ACCOUNT}" \
  --display-name="${NAME}" --budget-amount="${BUDGET_AMOUNT}${CURRENCY}" \
  --calendar-period=month --filter-projects="projects/${PROJECT}" \
  "${rules[@]}" "${notify[@]}"
echo "budget '${NAME}': ${BUDGET_AMOUNT} ${CURRENCY} a month for ${PROJECT}, alerts at ${THRESHOLDS}${FORECAST:+ (forecast ${FORECAST})}"
