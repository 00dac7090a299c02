"""The theoretical epsilon of DP-SGD from its parameters, by Google's dp-accounting library.

Never a hand-written formula: accountants are subtle, and a wrong one would turn a correct
model into an accused one.
"""

from __future__ import annotations

from typing import Literal

Accountant = Literal["rdp", "pld"]


def dpsgd_epsilon(
    *,
    noise_multiplier: float,
    sample_rate: float,
    steps: int,
    delta: float,
    accountant: Accountant = "rdp",
) -> float:
    """Epsilon of `steps` Poisson-subsampled Gaussian steps at the given delta.

    RDP is what Opacus reports by default; PLD is tighter (a smaller, still valid epsilon).
    """
    from dp_accounting import dp_event
    from dp_accounting.pld import pld_privacy_accountant
    from dp_accounting.rdp import rdp_privacy_accountant

    event = dp_event.SelfComposedDpEvent(
        dp_event.PoissonSampledDpEvent(sample_rate, dp_event.GaussianDpEvent(noise_multiplier)),
        steps,
    )
    if accountant == "rdp":
        ledger = rdp_privacy_accountant.RdpAccountant()
    else:
        ledger = pld_privacy_accountant.PLDAccountant()
    ledger.compose(event)
    return float(ledger.get_epsilon(delta))
