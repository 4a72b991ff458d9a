"""fmnist-tfx: the Fashion-MNIST CNN trained, validated, evaluated, served and
monitored with TFX. Install under the pinned TFX 1.16 stack:

  uv pip install -c constraints.txt -e '.[all]'
"""

import setuptools

# Pinned versions live in constraints.txt; these are the direct needs.
INSTALL_REQUIRES = [
    'tfx==1.16.0',
    'tensorflow==2.16.2',
    'tf-keras==2.16.0',
    'apache-beam[gcp]==2.59.0',
    'matplotlib',  # PNG reports
    'statsmodels',  # McNemar's exact test for comparisons and blessing
    'scikit-learn',  # `fmnist explore`: PCA, t-SNE, neighbours, CV
    'cleanlab',  # `fmnist explore`: confident learning (label errors)
]
EXTRAS = {
    # Vertex AI Pipelines: compile with KubeflowV2DagRunner, submit with aiplatform.
    'vertex': ['kfp==2.5.0', 'kfp-pipeline-spec==0.2.2',
               'google-cloud-aiplatform==1.70.0'],
    # The Cloud Run proxy in front of TF Serving / Vertex / the local model.
    'serving': ['fastapi', 'uvicorn', 'httptools', 'uvloop', 'python-multipart', 'pillow',
                'prometheus-client', 'tensorflow-serving-api==2.16.1',
                'google-cloud-bigquery', 'httpx', 'orjson',
                'google-cloud-aiplatform==1.70.0'],
    'test': ['pytest', 'httpx', 'schemathesis>=4.30,<5'],
}
EXTRAS['all'] = sorted({r for reqs in EXTRAS.values() for r in reqs})

setuptools.setup(
    name='fmnist-tfx',
    version='0.1.0',
    description='Fashion-MNIST CNN with TFX on Vertex AI, runnable locally.',
    python_requires='>=3.10,<3.11',
    packages=setuptools.find_packages(include=['models', 'models.*', 'pipeline',
                                               'pipeline.*', 'serving',
                                               'serving.*', 'monitoring',
                                               'monitoring.*', 'fmnist',
                                               'fmnist.*']),
    package_data={'': ['*.pbtxt', '*.json']},
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS,
    entry_points={'console_scripts': ['fmnist=fmnist.cli:main']},
)
