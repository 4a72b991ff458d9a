#!/usr/bin/env bash
# New data -> new span -> pipeline run, on GCP: an Eventarc trigger on
# `google.cloud.storage.object.v1.finalized` in the raw bucket starts the
# workflow in infra/trigger_workflow.yaml, which runs the Cloud Run job in
# infra/trigger_job.yaml (`fmnist watch gs://RAW_BUCKET/RAW_PREFIX --once
# --runner vertex`) for objects under RAW_PREFIX. Eventarc cannot start a
# Cloud Run job itself, and filters Cloud Storage events by bucket only; the
# workflow does both. Idempotent; run it again after a new pipeline image.
# Needs infra/provision.sh first (the fmnist-trigger and fmnist-events
# accounts, the Eventarc/Workflows APIs, the Cloud Storage agent's publisher
# role):
#
#   PROJECT=my-project REGION=us-central1 BUCKET=my-bucket \
#     PIPELINE_IMAGE=us-central1-docker.pkg.dev/my-project/fmnist/fmnist-pipeline:TAG \
#     infra/deploy_trigger.sh
#   gcloud storage cp train-*.gz t10k-*.gz gs://my-bucket/raw/fashion-mnist/
#
# Optional: RAW_BUCKET (default BUCKET; a regional bucket in REGION, as the
# trigger's location must match it), RAW_PREFIX (default raw/fashion-mnist/:
# letters, digits, - _ . and /, ending in /).
set -euo pipefail

die() { echo "error: $*" >&2; exit 2; }

[ -n "${PROJECT:-}" ] || die "set PROJECT to the GCP project ID"
[ -n "${REGION:-}" ] || die "set REGION, e.g. us-central1"
[ -n "${BUCKET:-}" ] || die "set BUCKET to the bucket name (no gs://)"
[ -n "${PIPELINE_IMAGE:-}" ] || die "set PIPELINE_IMAGE to the pipeline image URI with its tag"
RAW_BUCKET="${RAW_BUCKET:-${BUCKET}}"
RAW_PREFIX="${RAW_PREFIX-raw/fashion-mnist/}"
[[ "${RAW_BUCKET}" =~ ^[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]$ ]] ||
  die "RAW_BUCKET '${RAW_BUCKET}' is not a bucket name (no gs://)"
# Non-empty: the pipeline writes to BUCKET too, and every object it wrote
# would start the job. Regex-safe characters only: the workflow matches it.
[[ "${RAW_PREFIX}" =~ ^[A-Za-z0-9._-][A-Za-z0-9._/-]*/$ ]] ||
  die "RAW_PREFIX '${RAW_PREFIX}' must be a folder like raw/fashion-mnist/ (letters, digits, - _ . /, ending in /)"
case "${RAW_PREFIX}" in
  data/*|watch/*|pipeline_root/*|serving_model/*|monitoring/*|tmp/*)
    [ "${RAW_BUCKET}" != "${BUCKET}" ] ||
      die "RAW_PREFIX '${RAW_PREFIX}' is where the pipeline writes; use e.g. raw/fashion-mnist/" ;;
esac
[[ "${PIPELINE_IMAGE}" =~ :[A-Za-z0-9_][A-Za-z0-9_.-]*$|@sha256:[0-9a-f]{64}$ ]] ||
  die "PIPELINE_IMAGE '${PIPELINE_IMAGE}' has no tag; pin one (e.g. the commit SHA Cloud Build pushed)"

JOB=fmnist-trigger        # metadata.name in trigger_job.yaml
WORKFLOW=fmnist-trigger
TRIGGER=fmnist-raw-finalized
export PROJECT_ID="${PROJECT}" REGION BUCKET PIPELINE_IMAGE RAW_BUCKET RAW_PREFIX
export TRIGGER_JOB="${JOB}"
export TRIGGER_SERVICE_ACCOUNT="${TRIGGER_SA:-fmnist-trigger}@${PROJECT}.iam.gserviceaccount.com"
export RUNNER_SERVICE_ACCOUNT="${RUNNER_SA:-fmnist-pipeline}@${PROJECT}.iam.gserviceaccount.com"
export TRAINING_SERVICE_ACCOUNT="${TRAINING_SA:-fmnist-training}@${PROJECT}.iam.gserviceaccount.com"
events="${EVENTS_SA:-fmnist-events}@${PROJECT}.iam.gserviceaccount.com"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# A raw bucket of its own: the job reads the uploads there, nothing more
# (in BUCKET, provision.sh's objectAdmin already covers it).
if [ "${RAW_BUCKET}" != "${BUCKET}" ]; then
  gcloud storage buckets add-iam-policy-binding "gs://${RAW_BUCKET}" \
    --member "serviceAccount:${TRIGGER_SERVICE_ACCOUNT}" \
    --role roles/storage.objectViewer --quiet >/dev/null
fi

# Only these placeholders are substituted; anything else in the files stays.
envsubst '${PROJECT_ID} ${REGION} ${BUCKET} ${PIPELINE_IMAGE} ${RAW_BUCKET}
  ${RAW_PREFIX} ${TRIGGER_SERVICE_ACCOUNT} ${RUNNER_SERVICE_ACCOUNT}
  ${TRAINING_SERVICE_ACCOUNT}' < "${here}/trigger_job.yaml" \
  | gcloud run jobs replace - --region "${REGION}" --project "${PROJECT}"

# The workflow's identity may start this job (run.jobs.run), nothing else.
gcloud run jobs add-iam-policy-binding "${JOB}" --region "${REGION}" \
  --project "${PROJECT}" --member "serviceAccount:${events}" \
  --role roles/run.invoker --quiet >/dev/null

workflow="$(mktemp)"
trap 'rm -f "${workflow}"' EXIT
envsubst '${PROJECT_ID} ${REGION} ${RAW_PREFIX} ${TRIGGER_JOB}' \
  < "${here}/trigger_workflow.yaml" > "${workflow}"
gcloud workflows deploy "${WORKFLOW}" --source "${workflow}" \
  --location "${REGION}" --project "${PROJECT}" --service-account "${events}"

if gcloud eventarc triggers describe "${TRIGGER}" --location "${REGION}" \
    --project "${PROJECT}" >/dev/null 2>&1; then
  verb=update
else
  verb=create
fi
gcloud eventarc triggers "${verb}" "${TRIGGER}" --location "${REGION}" \
  --project "${PROJECT}" --destination-workflow "${WORKFLOW}" \
  --destination-workflow-location "${REGION}" \
  --event-filters "type=google.cloud.storage.object.v1.finalized" \
  --event-filters "bucket=${RAW_BUCKET}" \
  --service-account "${events}"

echo "Deployed ${JOB} (${PIPELINE_IMAGE}): new objects under gs://${RAW_BUCKET}/${RAW_PREFIX} start it."
echo "Upload a set: gcloud storage cp train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz gs://${RAW_BUCKET}/${RAW_PREFIX}"
echo "Or look now: gcloud run jobs execute ${JOB} --region ${REGION} --wait"
