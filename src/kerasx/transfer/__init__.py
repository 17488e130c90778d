"""Transfer learning: freeze and unfreeze layers, discriminative rates, `fine_tune`.

`freeze` / `unfreeze` set Keras' `trainable` flag on a leading part of a model
(BatchNorm layers of a frozen part stay in inference mode when it is
unfrozen), `LayerRateOptimizer` trains groups of variables at multiples of one
learning rate, and `fine_tune` is fastai's two-phase recipe built from them:

```python
from kerasx.transfer import fine_tune

frozen, unfrozen = fine_tune(model, x, y, base=-1, epochs=5)
```
"""

from kerasx.transfer._fine_tune import FineTuneResult, fine_tune
from kerasx.transfer._freeze import freeze, unfreeze
from kerasx.transfer._optimizer import LayerRateOptimizer

__all__ = ["FineTuneResult", "LayerRateOptimizer", "fine_tune", "freeze", "unfreeze"]
