"""The contract every backend keeps, so routes never care where a model runs."""

import abc
import dataclasses
from typing import Any, Dict, List, Optional

import numpy as np

from models import features


@dataclasses.dataclass(frozen=True)
class Prediction:
  """Outputs of the model's serving signature for a batch of N images."""
  probabilities: np.ndarray   # float32 [N, 10]
  class_ids: np.ndarray       # int64 [N]
  class_names: List[str]
  model_version: str
  # Vertex-only details (deployedModelId, model, modelVersionId) when known.
  extra: Dict[str, str] = dataclasses.field(default_factory=dict)

  @classmethod
  def from_outputs(cls, outputs: Dict[str, Any], version: str,
                   **extra: str) -> 'Prediction':
    """Builds a Prediction from signature outputs in any of our wire forms."""
    probabilities = np.asarray(outputs['probabilities'], dtype=np.float32)
    class_ids = np.asarray(outputs['class_ids'], dtype=np.int64).reshape(-1)
    names = outputs.get('class_names')
    if names is None:
      names = [features.CLASS_NAMES[i] for i in class_ids]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    return cls(probabilities.reshape(-1, features.NUM_CLASSES), class_ids,
               names, str(version), {k: str(v) for k, v in extra.items() if v})

  def __len__(self) -> int:
    return len(self.class_ids)


def version_status(version: str, state: str = 'AVAILABLE') -> Dict[str, Any]:
  """One entry of TF Serving's `model_version_status` list."""
  return {'version': str(version), 'state': state,
          'status': {'error_code': 'OK', 'error_message': ''}}


class Backend(abc.ABC):
  """A source of predictions. All methods may raise `serving.errors` types."""

  name: str = ''
  # Whether predict/status/metadata take `label=` (TF Serving version labels).
  supports_labels: bool = False

  async def start(self) -> None:
    """Acquires resources; called once when the app starts."""

  async def close(self) -> None:
    """Releases resources; called once when the app stops."""

  @abc.abstractmethod
  async def predict(self, pixels: np.ndarray, version: Optional[str] = None,
                    signature: str = 'serving_default') -> Prediction:
    """float32 pixels [N, 784] in 0..255 -> outputs of one model version."""

  @abc.abstractmethod
  async def status(self, version: Optional[str] = None) -> Dict[str, Any]:
    """TF Serving's GetModelStatus JSON: {"model_version_status": [...]}."""

  @abc.abstractmethod
  async def metadata(self, version: Optional[str] = None) -> Dict[str, Any]:
    """TF Serving's GetModelMetadata JSON (model_spec + signature_def)."""

  def loaded(self) -> bool:
    """Cheap check that a model is there at all (readiness does a real call)."""
    return True
