"""A valid Vertex config for tests: names and the CLI flags that carry them.

Imported by name from test modules (a `conftest` import would depend on which
conftest.py pytest loaded last).
"""

PROJECT = 'fmnist-test-123'
REGION = 'us-central1'
BUCKET = 'fmnist-test-bucket'
IMAGE = f'{REGION}-docker.pkg.dev/{PROJECT}/fmnist/fmnist-pipeline:abc123'
RUNNER_SA = f'pipeline-runner@{PROJECT}.iam.gserviceaccount.com'
TRAINING_SA = f'trainer@{PROJECT}.iam.gserviceaccount.com'


def vertex_flags(**overrides):
  """CLI flags for a valid Vertex config; overrides replace or drop (None)."""
  values = {'project': PROJECT, 'region': REGION, 'bucket': BUCKET,
            'image': IMAGE, 'service-account': RUNNER_SA,
            'training-service-account': TRAINING_SA}
  values.update(overrides)
  flags = []
  for name, value in values.items():
    if value is None:
      continue
    flags += [f'--{name}'] if value is True else [f'--{name}', str(value)]
  return flags
