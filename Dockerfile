# The pipeline image: every Vertex Pipelines step, the Vertex Training job and
# the Dataflow workers run this one image, so `models.*` and `pipeline.*` are
# importable everywhere by module path; nothing is uploaded at run time.
#
# Keep the base's ENTRYPOINT (/opt/apache/beam/boot): Dataflow starts workers
# through it, while Vertex steps and Training jobs pass their own command.
FROM gcr.io/tfx-oss-public/tfx:1.16.0

# pipeline.vertex_config.IMAGE_REPO_DIR: compiled specs read the curated schema
# from here, never from the path of the machine that compiled them.
WORKDIR /opt/fmnist

# oneDNN for the training and batch steps of this image (the Trainer, the
# Vertex Training job): 2.2x faster training steps on AVX2-only CPUs, where
# TF 2.16 leaves it off (models/runtime.py, benchmarks/onednn.py). Vertex
# starts these containers with TFX's entrypoint, not `fmnist`, so the image
# sets it. The serving image leaves it off (`fmnist serve` asks for off).
ENV TF_ENABLE_ONEDNN_OPTS=1

# The same pins as every other environment: with constraints.txt pip keeps the
# TFX 1.16 stack the base ships instead of upgrading it. The import check fails
# the build, not a pipeline run, if the user code cannot be imported.
COPY constraints.txt setup.py ./
COPY fmnist/ fmnist/
COPY models/ models/
COPY pipeline/ pipeline/
COPY serving/ serving/
COPY monitoring/ monitoring/
COPY schema/ schema/
RUN python -m pip install --no-cache-dir -c constraints.txt '.[vertex]' \
 && python -c "import models.trainer, models.preprocessing, pipeline.data_gate"
