"""kerasx: tested, installable Keras 3 extensions.

`import kerasx` imports every public submodule, so every kerasx layer, schedule
and callback is registered with Keras serialization (as keras-hub does) and
`keras.saving.load_model` finds them without `custom_objects`. The backend
kernels of `BatchNormActivation` are imported on first use, and matplotlib only
when a plot is drawn, so `import kerasx` costs little more than `import keras`:

```python
import kerasx

schedule = kerasx.schedules.OneCycle(1e-2, total_steps=1000)
```
"""

from kerasx import (
    callbacks,
    datasets,
    layers,
    lr_finder,
    models,
    ops,
    plotting,
    saving,
    schedules,
    transfer,
    transforms,
    uncertainty,
)
from kerasx._version import __version__

__all__ = [
    "__version__",
    "callbacks",
    "datasets",
    "layers",
    "lr_finder",
    "models",
    "ops",
    "plotting",
    "saving",
    "schedules",
    "transfer",
    "transforms",
    "uncertainty",
]
