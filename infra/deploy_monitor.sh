#!/usr/bin/env bash
# Deploys the daily monitoring job: the Cloud Run job in infra/monitor_job.yaml
# (`fmnist monitor` from the pipeline image on the proxy's BigQuery log) and
# the Cloud Scheduler job that runs it. Idempotent; run it again after a new
# pipeline image or baseline. Needs infra/provision.sh first (service accounts,
# the log dataset) and the alert webhook URL in Secret Manager:
#
#   printf %s "$WEBHOOK_URL" | gcloud secrets create fmnist-alert-webhook --data-file=-
#   PROJECT=my-project REGION=us-central1 BUCKET=my-bucket \
#     PIPELINE_IMAGE=us-central1-docker.pkg.dev/my-project/fmnist/fmnist-pipeline:TAG \
#     BASELINE_STATISTICS=gs://my-bucket/pipeline_root/.../StatisticsGen_.../statistics \
#     infra/deploy_monitor.sh
#
# BASELINE_STATISTICS is the served model's train statistics (the Vertex
# pipeline's StatisticsGen output for its span): the monitor does not read
# lineage from Vertex ML Metadata. SCHEDULE is cron in TIME_ZONE (daily 06:00).
set -euo pipefail

: "${PROJECT:?set PROJECT to the GCP project ID}"
: "${REGION:?set REGION, e.g. us-central1}"
: "${BUCKET:?set BUCKET to the bucket name (no gs://)}"
: "${PIPELINE_IMAGE:?set PIPELINE_IMAGE to the pipeline image URI with its tag}"
: "${BASELINE_STATISTICS:?set BASELINE_STATISTICS to a gs:// StatisticsGen output}"
BQ_DATASET="${BQ_DATASET:-fmnist_monitoring}"
SCHEDULE="${SCHEDULE:-0 6 * * *}"
TIME_ZONE="${TIME_ZONE:-Etc/UTC}"
JOB=fmnist-monitor  # metadata.name in monitor_job.yaml

export PROJECT_ID="${PROJECT}" REGION BUCKET PIPELINE_IMAGE BASELINE_STATISTICS
export BQ_TABLE="${BQ_TABLE:-${PROJECT}.${BQ_DATASET}.requests}"
export MONITOR_SERVICE_ACCOUNT="${MONITOR_SA:-fmnist-monitor}@${PROJECT}.iam.gserviceaccount.com"
export RUNNER_SERVICE_ACCOUNT="${RUNNER_SA:-fmnist-pipeline}@${PROJECT}.iam.gserviceaccount.com"
export TRAINING_SERVICE_ACCOUNT="${TRAINING_SA:-fmnist-training}@${PROJECT}.iam.gserviceaccount.com"
scheduler="${SCHEDULER_SA:-fmnist-scheduler}@${PROJECT}.iam.gserviceaccount.com"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# The job reads the webhook URL (FMNIST_ALERT_WEBHOOK) from this secret only
# (granted first: deploying checks that the job can read it).
gcloud secrets add-iam-policy-binding fmnist-alert-webhook --project "${PROJECT}" \
  --member "serviceAccount:${MONITOR_SERVICE_ACCOUNT}" \
  --role roles/secretmanager.secretAccessor --quiet >/dev/null

# Only these placeholders are substituted; anything else in the file stays.
envsubst '${PROJECT_ID} ${REGION} ${BUCKET} ${PIPELINE_IMAGE} ${BQ_TABLE}
  ${BASELINE_STATISTICS} ${MONITOR_SERVICE_ACCOUNT} ${RUNNER_SERVICE_ACCOUNT}
  ${TRAINING_SERVICE_ACCOUNT}' < "${here}/monitor_job.yaml" \
  | gcloud run jobs replace - --region "${REGION}" --project "${PROJECT}"

# The scheduler's identity may start this job (run.jobs.run), nothing else.
gcloud run jobs add-iam-policy-binding "${JOB}" --region "${REGION}" \
  --project "${PROJECT}" --member "serviceAccount:${scheduler}" \
  --role roles/run.invoker --quiet >/dev/null

# Cloud Scheduler calls the Cloud Run Admin API's jobs.run with an OAuth token.
uri="https://${REGION}-run.googleapis.com/apis/run.googleapis.com/v1/namespaces/${PROJECT}/jobs/${JOB}:run"
if gcloud scheduler jobs describe "${JOB}-daily" --location "${REGION}" \
    --project "${PROJECT}" >/dev/null 2>&1; then
  verb=update
else
  verb=create
fi
gcloud scheduler jobs "${verb}" http "${JOB}-daily" --location "${REGION}" \
  --project "${PROJECT}" --schedule "${SCHEDULE}" --time-zone "${TIME_ZONE}" \
  --uri "${uri}" --http-method POST \
  --oauth-service-account-email "${scheduler}"

echo "Deployed ${JOB} (${PIPELINE_IMAGE}); scheduled '${SCHEDULE}' ${TIME_ZONE}."
echo "Run it now: gcloud run jobs execute ${JOB} --region ${REGION} --wait"
