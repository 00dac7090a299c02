"""The theoretical epsilon of DP-SGD from its parameters, by every real accountant we have.

Never a hand-written formula: accountants are subtle, and a wrong one would turn a correct
model into an accused one. Each accountant is reported by name; all four are sound upper
bounds on the true epsilon (PRV is reported at the upper end of its error bound), so the
smallest of them is the tightest statement the parameters support.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from attacks.report import AccountedEpsilon

Accountant = Literal["rdp", "pld", "prv"]

# The PRV accountant's error tolerance on epsilon; its reported value is estimate + error.
PRV_EPS_ERROR = 0.01


def _dp_accounting(kind: str) -> Callable[[float, float, int, float], float]:
    def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
        from dp_accounting import dp_event
        from dp_accounting.pld import pld_privacy_accountant
        from dp_accounting.rdp import rdp_privacy_accountant

        event = dp_event.SelfComposedDpEvent(
            dp_event.PoissonSampledDpEvent(sample_rate, dp_event.GaussianDpEvent(noise_multiplier)),
            steps,
        )
        ledger = (
            rdp_privacy_accountant.RdpAccountant()
            if kind == "rdp"
            else pld_privacy_accountant.PLDAccountant()  # pessimistic discretisation: sound
        )
        ledger.compose(event)
        return float(ledger.get_epsilon(delta))

    return epsilon


def _opacus(kind: str) -> Callable[[float, float, int, float], float]:
    def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
        from opacus.accountants import PRVAccountant, RDPAccountant

        ledger = RDPAccountant() if kind == "rdp" else PRVAccountant()
        ledger.history = [(noise_multiplier, sample_rate, steps)]
        if kind == "prv":
            return float(ledger.get_epsilon(delta, eps_error=PRV_EPS_ERROR))
        return float(ledger.get_epsilon(delta))

    return epsilon


# name -> (short kind the spec may name, computation, note for the report)
ACCOUNTANTS: dict[str, tuple[Accountant, Callable[[float, float, int, float], float], str]] = {
    "dp-accounting-rdp": ("rdp", _dp_accounting("rdp"), "Renyi DP, Google dp-accounting"),
    "dp-accounting-pld": (
        "pld",
        _dp_accounting("pld"),
        "privacy loss distribution, pessimistic discretisation, Google dp-accounting",
    ),
    "opacus-rdp": ("rdp", _opacus("rdp"), "Renyi DP, Opacus"),
    "opacus-prv": (
        "prv",
        _opacus("prv"),
        f"privacy random variables, Opacus; upper end of the estimate's error bound "
        f"(eps_error {PRV_EPS_ERROR}, delta_error delta/1000)",
    ),
}


def account_dpsgd(
    *, noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> list[AccountedEpsilon]:
    """Epsilon of `steps` Poisson-subsampled Gaussian steps at `delta`, by every accountant.

    An accountant that fails on these parameters is kept in the list with its error instead
    of an epsilon, so the report shows what was tried.
    """
    results = []
    for name, (_, compute, note) in ACCOUNTANTS.items():
        try:
            epsilon = compute(noise_multiplier, sample_rate, steps, delta)
        except Exception as error:  # any accountant's failure is reported, not fatal
            note = f"failed: {error}"
            results.append(AccountedEpsilon(accountant=name, epsilon=None, note=note))
            continue
        results.append(AccountedEpsilon(accountant=name, epsilon=epsilon, note=note))
    return results


def tightest(accounted: list[AccountedEpsilon], kind: Accountant | None = None) -> AccountedEpsilon:
    """The smallest epsilon among the (sound) accountants, optionally of one kind only."""
    usable = [
        a
        for a in accounted
        if a.epsilon is not None and (kind is None or ACCOUNTANTS[a.accountant][0] == kind)
    ]
    if not usable:
        raise ValueError("no accountant could compute epsilon for these DP-SGD parameters")
    return min(usable, key=lambda a: a.epsilon if a.epsilon is not None else math.inf)
