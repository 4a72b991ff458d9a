#!/usr/bin/env bash
# Creates what the Vertex pipeline, Cloud Build, the serving proxy and the
# monitoring job need: APIs, one bucket, one Artifact Registry repository, the
# BigQuery request-log table and the service accounts, with least-privilege
# roles. Idempotent: rerunning skips what exists. The monitoring job itself is
# deployed by infra/deploy_monitor.sh once the pipeline image exists.
#
#   PROJECT=my-project REGION=us-central1 BUCKET=my-bucket infra/provision.sh
#
# Nothing here is specific to one project: everything comes from the
# environment. Each role below says why it is needed.
set -euo pipefail

: "${PROJECT:?set PROJECT to the GCP project ID}"
: "${REGION:?set REGION, e.g. us-central1}"
: "${BUCKET:?set BUCKET to the bucket name (no gs://)}"
REPOSITORY="${REPOSITORY:-fmnist}"
RUNNER_SA="${RUNNER_SA:-fmnist-pipeline}"
TRAINING_SA="${TRAINING_SA:-fmnist-training}"
SERVING_SA="${SERVING_SA:-fmnist-proxy}"
MONITOR_SA="${MONITOR_SA:-fmnist-monitor}"
SCHEDULER_SA="${SCHEDULER_SA:-fmnist-scheduler}"
BQ_DATASET="${BQ_DATASET:-fmnist_monitoring}"

runner="${RUNNER_SA}@${PROJECT}.iam.gserviceaccount.com"
training="${TRAINING_SA}@${PROJECT}.iam.gserviceaccount.com"
serving="${SERVING_SA}@${PROJECT}.iam.gserviceaccount.com"
monitor="${MONITOR_SA}@${PROJECT}.iam.gserviceaccount.com"
number="$(gcloud projects describe "${PROJECT}" --format='value(projectNumber)')"
cloudbuild="${number}@cloudbuild.gserviceaccount.com"

gcloud services enable --project "${PROJECT}" \
  aiplatform.googleapis.com dataflow.googleapis.com \
  artifactregistry.googleapis.com cloudbuild.googleapis.com \
  run.googleapis.com storage.googleapis.com iam.googleapis.com \
  bigquery.googleapis.com cloudscheduler.googleapis.com \
  secretmanager.googleapis.com

# One regional bucket next to the jobs: pipeline root, data spans, temp files,
# compiled specs and the serving directory the proxy reads.
if ! gcloud storage buckets describe "gs://${BUCKET}" --project "${PROJECT}" >/dev/null 2>&1; then
  gcloud storage buckets create "gs://${BUCKET}" --project "${PROJECT}" \
    --location "${REGION}" --uniform-bucket-level-access
fi

if ! gcloud artifacts repositories describe "${REPOSITORY}" --location "${REGION}" \
    --project "${PROJECT}" >/dev/null 2>&1; then
  gcloud artifacts repositories create "${REPOSITORY}" --project "${PROJECT}" \
    --location "${REGION}" --repository-format docker \
    --description "fmnist-tfx pipeline and serving images"
fi

# The proxy's request log (serving/bigquery_schema.json, Vertex AI's
# request-response logging schema), partitioned by day on logging_time so the
# monitor's `logging_time >= @since` reads only the days it checks.
if ! bq --project_id "${PROJECT}" show "${PROJECT}:${BQ_DATASET}" >/dev/null 2>&1; then
  bq --project_id "${PROJECT}" --location "${REGION}" mk --dataset \
    "${PROJECT}:${BQ_DATASET}"
fi
if ! bq --project_id "${PROJECT}" show "${PROJECT}:${BQ_DATASET}.requests" >/dev/null 2>&1; then
  bq --project_id "${PROJECT}" mk --table --time_partitioning_field logging_time \
    --time_partitioning_type DAY "${PROJECT}:${BQ_DATASET}.requests" \
    "$(dirname "${BASH_SOURCE[0]}")/../serving/bigquery_schema.json"
fi

for sa in "${RUNNER_SA}" "${TRAINING_SA}" "${SERVING_SA}" "${MONITOR_SA}" \
    "${SCHEDULER_SA}"; do
  if ! gcloud iam service-accounts describe "${sa}@${PROJECT}.iam.gserviceaccount.com" \
      --project "${PROJECT}" >/dev/null 2>&1; then
    gcloud iam service-accounts create "${sa}" --project "${PROJECT}" \
      --display-name "fmnist-tfx ${sa}"
  fi
done

project_role() {  # member role
  gcloud projects add-iam-policy-binding "${PROJECT}" --member "$1" \
    --role "$2" --condition None --quiet >/dev/null
}
bucket_role() {  # member role
  gcloud storage buckets add-iam-policy-binding "gs://${BUCKET}" \
    --member "$1" --role "$2" --quiet >/dev/null
}
repo_role() {  # member role
  gcloud artifacts repositories add-iam-policy-binding "${REPOSITORY}" \
    --location "${REGION}" --project "${PROJECT}" --member "$1" --role "$2" \
    --quiet >/dev/null
}
dataset_role() {  # member role: BigQuery's GRANT on the request-log dataset only
  bq --project_id "${PROJECT}" --location "${REGION}" query --nouse_legacy_sql --quiet \
    "GRANT \`$2\` ON SCHEMA \`${PROJECT}.${BQ_DATASET}\` TO \"$1\"" >/dev/null
}
sa_role() {  # service-account member role
  gcloud iam service-accounts add-iam-policy-binding "$1" --project "${PROJECT}" \
    --member "$2" --role "$3" --quiet >/dev/null
}

# --- Pipeline runner: runs the Vertex Pipelines steps and the Dataflow workers.
# Starts Vertex Training/CustomJobs, reads/writes Vertex ML Metadata, deploys to
# an Endpoint when the Pusher is configured to.
project_role "serviceAccount:${runner}" roles/aiplatform.user
# Launches Dataflow jobs for the Beam components ...
project_role "serviceAccount:${runner}" roles/dataflow.developer
# ... and is the Dataflow worker identity (--service_account_email).
project_role "serviceAccount:${runner}" roles/dataflow.worker
# Reads spans and the schema, writes artifacts, temp files and the model; only
# in this bucket.
bucket_role "serviceAccount:${runner}" roles/storage.objectAdmin
# Pulls the pipeline image (steps, Dataflow workers); only this repository.
repo_role "serviceAccount:${runner}" roles/artifactregistry.reader
# Starts Vertex Training jobs that run as the training account.
sa_role "${training}" "serviceAccount:${runner}" roles/iam.serviceAccountUser
# Dataflow workers run as the runner itself.
sa_role "${runner}" "serviceAccount:${runner}" roles/iam.serviceAccountUser

# --- Training: the Vertex Training job that runs models.trainer.run_fn.
# Logs to Vertex AI Experiments / TensorBoard (metadata + tensorboard APIs).
project_role "serviceAccount:${training}" roles/aiplatform.user
# Reads Transform output, writes the model artifact and TensorBoard logs.
bucket_role "serviceAccount:${training}" roles/storage.objectAdmin
# Pulls the pipeline image it runs from.
repo_role "serviceAccount:${training}" roles/artifactregistry.reader

# --- Serving proxy (Cloud Run): reads models, writes nothing.
# Reads the pushed SavedModels under gs://BUCKET/serving_model.
bucket_role "serviceAccount:${serving}" roles/storage.objectViewer
# Streams its request log into the monitoring dataset (insertAll), nowhere else.
dataset_role "serviceAccount:${serving}" roles/bigquery.dataEditor
# Calls a Vertex Endpoint when the proxy is pointed at one (predict only).
project_role "serviceAccount:${serving}" roles/aiplatform.user

# --- Monitoring job (Cloud Run job, infra/monitor_job.yaml).
# Reads the proxy's request log in the monitoring dataset ...
dataset_role "serviceAccount:${monitor}" roles/bigquery.dataViewer
# ... through a query job, which runs in the project.
project_role "serviceAccount:${monitor}" roles/bigquery.jobUser
# Reads the baseline statistics under the pipeline root and keeps its history
# and reports in gs://BUCKET/monitoring (mounted); only in this bucket.
bucket_role "serviceAccount:${monitor}" roles/storage.objectAdmin
# Submits the retraining pipeline run (--retrain-on-drift --runner vertex) ...
project_role "serviceAccount:${monitor}" roles/aiplatform.user
# ... which executes as the runner account ...
sa_role "${runner}" "serviceAccount:${monitor}" roles/iam.serviceAccountUser
# ... after checking that the pipeline image exists; only this repository.
repo_role "serviceAccount:${monitor}" roles/artifactregistry.reader
# The scheduler account gets roles/run.invoker on the job itself only
# (infra/deploy_monitor.sh, once the job exists); nothing here.

# --- New data trigger (infra/deploy_trigger.sh): Eventarc -> workflow ->
# Cloud Run job `fmnist watch --once --runner vertex` on the raw prefix.
TRIGGER_SA="${TRIGGER_SA:-fmnist-trigger}"  # the job: ingest + submit
EVENTS_SA="${EVENTS_SA:-fmnist-events}"     # Eventarc trigger + workflow
trigger="${TRIGGER_SA}@${PROJECT}.iam.gserviceaccount.com"
events="${EVENTS_SA}@${PROJECT}.iam.gserviceaccount.com"
gcloud services enable --project "${PROJECT}" eventarc.googleapis.com \
  workflows.googleapis.com pubsub.googleapis.com
for sa in "${TRIGGER_SA}" "${EVENTS_SA}"; do
  if ! gcloud iam service-accounts describe "${sa}@${PROJECT}.iam.gserviceaccount.com" \
      --project "${PROJECT}" >/dev/null 2>&1; then
    gcloud iam service-accounts create "${sa}" --project "${PROJECT}" \
      --display-name "fmnist-tfx ${sa}"
  fi
done
# Reads the uploads under the raw prefix, writes the new span under data/ and
# creates (with a does-not-exist precondition), rewrites or deletes its
# fingerprint records under watch/; only in this bucket (a separate raw
# bucket gets objectViewer from deploy_trigger.sh).
bucket_role "serviceAccount:${trigger}" roles/storage.objectAdmin
# Submits the pipeline run on the new span ...
project_role "serviceAccount:${trigger}" roles/aiplatform.user
# ... which executes as the runner account ...
sa_role "${runner}" "serviceAccount:${trigger}" roles/iam.serviceAccountUser
# ... after checking that the pipeline image exists; only this repository.
repo_role "serviceAccount:${trigger}" roles/artifactregistry.reader
# The Eventarc trigger's identity must be allowed to receive events ...
project_role "serviceAccount:${events}" roles/eventarc.eventReceiver
# ... and starts executions of the workflow (its destination). As the
# workflow's identity it may start the trigger job only: roles/run.invoker
# on that job, granted by deploy_trigger.sh once the job exists.
project_role "serviceAccount:${events}" roles/workflows.invoker
gcs_agent="$(gcloud storage service-agent --project "${PROJECT}")"
# Cloud Storage publishes the bucket's events to Eventarc's Pub/Sub topic as
# its service agent (required for Cloud Storage triggers).
project_role "serviceAccount:${gcs_agent}" roles/pubsub.publisher

# --- Cloud Build: builds, pushes, compiles, submits, deploys.
# Pushes both images to this repository only.
repo_role "serviceAccount:${cloudbuild}" roles/artifactregistry.writer
# Uploads the compiled spec and reads the smoke-test dataset.
bucket_role "serviceAccount:${cloudbuild}" roles/storage.objectAdmin
# Submits Vertex pipeline runs (_SUBMIT_RUN=true).
project_role "serviceAccount:${cloudbuild}" roles/aiplatform.user
# Submits runs that execute as the runner account.
sa_role "${runner}" "serviceAccount:${cloudbuild}" roles/iam.serviceAccountUser
# Replaces the Cloud Run service ...
project_role "serviceAccount:${cloudbuild}" roles/run.developer
# ... which runs as the proxy account.
sa_role "${serving}" "serviceAccount:${cloudbuild}" roles/iam.serviceAccountUser

cat <<DONE
Provisioned. Use:
  export FMNIST_PROJECT=${PROJECT} FMNIST_REGION=${REGION} FMNIST_BUCKET=${BUCKET}
  export FMNIST_REPOSITORY=${REPOSITORY}
  export FMNIST_SERVICE_ACCOUNT=${runner}
  export FMNIST_TRAINING_SERVICE_ACCOUNT=${training}
  # Cloud Build: --substitutions=_BUCKET=${BUCKET},_SERVICE_ACCOUNT=${runner},_TRAINING_SERVICE_ACCOUNT=${training},_SERVING_SERVICE_ACCOUNT=${serving}
The proxy logs to ${PROJECT}.${BQ_DATASET}.requests (--bq-table). Deploy the daily
monitoring job once the pipeline image is pushed: infra/deploy_monitor.sh,
and the new-data trigger (raw uploads -> span -> run): infra/deploy_trigger.sh.
Upload the four Fashion-MNIST IDX .gz files for the Cloud Build smoke test:
  gcloud storage cp /usr/share/datasets/fashion-mnist/*.gz gs://${BUCKET}/datasets/fashion-mnist/
DONE
