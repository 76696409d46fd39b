"""DyHPO (Wistuba, Schwarz & Grabocka, NeurIPS 2022) as a Ray Tune scheduler: :class:`DyHPO`
(:mod:`ohgw.dyhpo.scheduler`), its deep-kernel GP surrogate (:mod:`ohgw.dyhpo.surrogate` on
:mod:`ohgw.dyhpo.gp`, plain torch), the multi-fidelity EI (:mod:`ohgw.dyhpo.acquisition`) and
the config encoding (:mod:`ohgw.dyhpo.encoding`)."""

from ohgw.dyhpo.scheduler import DyHPO

__all__ = ["DyHPO"]
