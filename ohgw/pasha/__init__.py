"""PASHA and promotion-type ASHA as Ray Tune schedulers (:mod:`ohgw.pasha.scheduler`), with their
rung bookkeeping (:mod:`ohgw.pasha.rungs`, pure Python, no Ray)."""

from ohgw.pasha.scheduler import PASHA, PromotionASHA

__all__ = ["PASHA", "PromotionASHA"]
