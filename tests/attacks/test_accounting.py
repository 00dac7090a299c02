"""Tests for the theoretical epsilon of DP-SGD: every accountant, against published vectors."""

import pydantic
import pytest

from attacks.privacy.accounting import (
    ACCOUNTANTS,
    ClaimRejected,
    account_dpsgd,
    accounting_cache_info,
    resolve_claim,
    tightest,
)
from attacks.report import DPClaim, DPSGDParameters

# Published RDP values: Opacus's accountant tests, and TensorFlow Privacy's tutorial/tests.
OPACUS = {"noise_multiplier": 1.5, "sample_rate": 0.04, "steps": 2250, "delta": 1e-5}
TF_PRIVACY = {"noise_multiplier": 1.3, "sample_rate": 150 / 60000, "steps": 6000, "delta": 1e-5}


@pytest.fixture(scope="module")
def accounted():
    return {
        name: {a.accountant: a for a in account_dpsgd(**params)}
        for name, params in (("opacus", OPACUS), ("tf", TF_PRIVACY))
    }


def test_rdp_matches_the_published_vectors(accounted):
    assert accounted["opacus"]["opacus-rdp"].epsilon == pytest.approx(7.32911117143, rel=1e-9)
    assert accounted["tf"]["opacus-rdp"].epsilon == pytest.approx(0.72422, abs=1e-5)
    # dp-accounting searches a finer grid of Renyi orders: never looser, within 2%.
    for case, published in (("opacus", 7.32911117143), ("tf", 0.72422)):
        ours = accounted[case]["dp-accounting-rdp"].epsilon
        assert published * 0.98 <= ours <= published * 1.0001


def test_every_accountant_is_reported_and_the_tight_ones_beat_rdp(accounted):
    for case in accounted.values():
        assert set(case) == set(ACCOUNTANTS)
        assert all(a.epsilon is not None and a.note for a in case.values())
        rdp = case["opacus-rdp"].epsilon
        # PLD and PRV are tighter than RDP for the subsampled Gaussian, and agree closely.
        assert case["dp-accounting-pld"].epsilon < rdp
        assert case["opacus-prv"].epsilon < rdp
        pld, prv = case["dp-accounting-pld"].epsilon, case["opacus-prv"].epsilon
        assert prv == pytest.approx(pld, rel=0.03)
        assert "upper end" in case["opacus-prv"].note


def _resolved(delta: float = 1e-5, **dp_sgd) -> DPClaim:
    return resolve_claim(epsilon=None, delta=delta, dp_sgd=DPSGDParameters(**dp_sgd))


def test_claim_uses_the_tightest_accountant_and_keeps_them_all():
    claim = _resolved(**{k: v for k, v in OPACUS.items() if k != "delta"})
    by_name = {a.accountant: a.epsilon for a in claim.accountants}
    assert set(by_name) == set(ACCOUNTANTS)
    assert claim.accounted_epsilon == claim.epsilon == min(by_name.values())
    assert by_name[claim.accountant] == claim.epsilon
    # Naming an accountant kind restricts the choice to it (backward compatible specs).
    rdp = _resolved(noise_multiplier=1.5, sample_rate=0.04, steps=2250, accountant="rdp")
    assert rdp.accountant in ("opacus-rdp", "dp-accounting-rdp")
    assert rdp.epsilon == pytest.approx(7.3, rel=0.02) and rdp.epsilon > claim.epsilon


def test_a_stored_claim_is_not_recomputed_and_old_specs_still_load():
    claim = _resolved(noise_multiplier=1.1, sample_rate=0.02, epochs=5)
    again = DPClaim.model_validate(claim.model_dump(mode="json"))
    assert again == claim
    # A spec stored before accountants were listed (schema 1) still validates.
    old = DPClaim.model_validate(
        {
            "epsilon": 3.0,
            "delta": 1e-5,
            "dp_sgd": {
                "noise_multiplier": 1.1,
                "sample_rate": 0.02,
                "epochs": 5,
                "accountant": "rdp",
            },
            "accounted_epsilon": 3.0,
        }
    )
    assert old.claimed_epsilon == 3.0 and old.accountants == []
    assert DPClaim(epsilon=2.0).accountants == []


def test_tightest_refuses_when_nothing_could_account():
    with pytest.raises(ValueError, match="no accountant"):
        tightest([])
    with pytest.raises(pydantic.ValidationError):
        DPSGDParameters(noise_multiplier=0, sample_rate=0.1, steps=10)


def test_the_report_schema_never_accounts():
    """Reading a claim runs no accountant: DP-SGD parameters alone are not a reported claim."""
    with pytest.raises(pydantic.ValidationError, match="accounted for by the server"):
        DPClaim(dp_sgd={"noise_multiplier": 1.1, "sample_rate": 0.02, "epochs": 5})


def test_accounting_is_cached_by_noise_rate_steps_and_delta():
    params = {"noise_multiplier": 1.3, "sample_rate": 0.03, "steps": 120}
    first = _resolved(delta=1e-6, **params)
    before = accounting_cache_info()
    again = _resolved(delta=1e-6, **params)
    after = accounting_cache_info()
    assert after["hits"] == before["hits"] + 1 and after["misses"] == before["misses"]
    assert again == first
    _resolved(delta=1e-7, **params)  # another delta is another entry
    assert accounting_cache_info()["misses"] == after["misses"] + 1


def test_copied_claim_at_a_smaller_delta_is_accounted_again_or_refused():
    """Issue 10: a claim accounted at delta 1e-5, resubmitted at 1e-9, gets the accountant's
    epsilon at 1e-9; its old epsilon declared at 1e-9 is refused, not checked."""
    params = {"noise_multiplier": 1.1, "sample_rate": 0.02, "steps": 1250}
    at_1e5 = _resolved(delta=1e-5, **params)
    at_1e9 = _resolved(delta=1e-9, **params)
    assert at_1e9.epsilon > at_1e5.epsilon
    assert at_1e9.epsilon == min(a.epsilon for a in at_1e9.accountants if a.epsilon)
    with pytest.raises(ClaimRejected, match="below what the dp_sgd parameters give"):
        resolve_claim(epsilon=at_1e5.epsilon, delta=1e-9, dp_sgd=DPSGDParameters(**params))
    declared = resolve_claim(
        epsilon=at_1e9.epsilon + 1, delta=1e-9, dp_sgd=DPSGDParameters(**params)
    )
    assert declared.claimed_epsilon == at_1e9.epsilon + 1
    assert declared.epsilon_source == "declared" and at_1e9.epsilon_source == "accountant"
    assert declared.epsilon_origin.startswith("declared by the model's owner")
    assert at_1e9.epsilon_origin.startswith("computed by the server from the DP-SGD parameters")
    assert at_1e9.accountant in at_1e9.epsilon_origin
    assert DPClaim(epsilon=2.0).epsilon_origin == "declared by the model's owner"
