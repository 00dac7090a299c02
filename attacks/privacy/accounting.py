"""The theoretical epsilon of DP-SGD from its parameters, by every real accountant we have.

Never a hand-written formula: accountants are subtle, and a wrong one would turn a correct
model into an accused one. Each accountant is reported by name; all four are sound upper
bounds on the true epsilon (PRV is reported at the upper end of its error bound), so the
smallest of them is the tightest statement the parameters support.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal

from attacks.report import AccountedEpsilon, DPClaim, DPSGDParameters

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
    of an epsilon, so the report shows what was tried. Cached per process: the accountants
    take seconds, and pipelines resubmit the same training parameters audit after audit.
    """
    accounted = _account_cached(
        float(noise_multiplier), float(sample_rate), int(steps), float(delta)
    )
    return [a.model_copy() for a in accounted]


@functools.lru_cache(maxsize=256)
def _account_cached(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> tuple[AccountedEpsilon, ...]:
    """Pure in its arguments, so the cache key (noise, rate, steps, delta) is the whole input."""
    return tuple(_account(noise_multiplier, sample_rate, steps, delta))


def _account(
    noise_multiplier: float, sample_rate: float, steps: int, delta: float
) -> list[AccountedEpsilon]:
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


def accounting_cache_info() -> dict[str, int]:
    """Hits and misses of the accountant cache (for tests and operators)."""
    info = _account_cached.cache_info()
    return {"hits": info.hits, "misses": info.misses, "size": info.currsize}


class ClaimRejected(ValueError):
    """The claim cannot be checked as given: the message says which field and why."""


def resolve_claim(
    *,
    epsilon: float | None,
    delta: float,
    dp_sgd: DPSGDParameters | None,
    max_record_occurrences: int = 1,
) -> DPClaim:
    """The claim to report and check, with the server's own accounting of any DP-SGD run.

    A declared epsilon below what every accountant gives for the declared DP-SGD parameters is
    refused: training with those parameters is not shown to meet it, so a verdict against it
    would accuse the training of a gap that lies in the claim (for instance an epsilon copied
    from a report accounted at another delta).
    """
    if epsilon is None and dp_sgd is None:
        raise ClaimRejected("dp_claim: give epsilon, or dp_sgd parameters to account for")
    if dp_sgd is None:
        return DPClaim(epsilon=epsilon, delta=delta, max_record_occurrences=max_record_occurrences)
    accountants = account_dpsgd(
        noise_multiplier=dp_sgd.noise_multiplier,
        sample_rate=dp_sgd.sample_rate,
        steps=dp_sgd.n_steps,
        delta=delta,
    )
    try:
        chosen = tightest(accountants, dp_sgd.accountant)
    except ValueError as exc:
        raise ClaimRejected(f"dp_claim.dp_sgd: {exc}") from exc
    best = tightest(accountants)  # whatever the preference: a claim below every one is unshown
    assert chosen.epsilon is not None and best.epsilon is not None
    if epsilon is not None and epsilon < best.epsilon * (1 - 1e-9):
        raise ClaimRejected(
            f"dp_claim.epsilon: {epsilon:g} at delta {delta:g} is below what the dp_sgd "
            f"parameters give ({best.epsilon:.4g} by {best.accountant}, the tightest "
            "accountant): training with them is not shown to meet it. Leave epsilon out to "
            "check the accountant's epsilon at this delta, or correct delta or the parameters."
        )
    return DPClaim(
        epsilon=epsilon,
        delta=delta,
        dp_sgd=dp_sgd,
        accounted_epsilon=chosen.epsilon,
        accountant=chosen.accountant,
        accountants=accountants,
        max_record_occurrences=max_record_occurrences,
    )
