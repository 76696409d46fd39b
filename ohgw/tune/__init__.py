"""The Ray Tune plug-ins: the :class:`OHGW` scheduler wrapper, its callbacks, searcher feedback, scheduler state.

Data flows one way: the wrapper injects the warm-start instruction into a new trial's
config (:mod:`ohgw.protocol`), the trainable warm-starts and reports x′ with its first
result, and the wrapper records x′ into the trial's config; every scheduling decision
stays the wrapped scheduler's (:mod:`ohgw.tune.delegating`).
"""

from ohgw.tune.callbacks import AdjustedConfigCallback, SchedulerStateCallback
from ohgw.tune.searcher import OHGWSearcher
from ohgw.tune.wrapper import OHGW, OHGWWarning

__all__ = ["OHGW", "AdjustedConfigCallback", "OHGWSearcher", "OHGWWarning", "SchedulerStateCallback"]
