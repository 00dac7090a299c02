"""Tests for the theoretical epsilon of DP-SGD: every accountant, against published vectors."""

import pydantic
import pytest

from attacks.privacy.accounting import ACCOUNTANTS, account_dpsgd, tightest
from attacks.report import DPClaim

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


def test_claim_uses_the_tightest_accountant_and_keeps_them_all():
    claim = DPClaim(delta=1e-5, dp_sgd={k: v for k, v in OPACUS.items() if k != "delta"})
    by_name = {a.accountant: a.epsilon for a in claim.accountants}
    assert set(by_name) == set(ACCOUNTANTS)
    assert claim.accounted_epsilon == claim.epsilon == min(by_name.values())
    assert by_name[claim.accountant] == claim.epsilon
    # Naming an accountant kind restricts the choice to it (backward compatible specs).
    rdp = DPClaim(
        delta=1e-5,
        dp_sgd={"noise_multiplier": 1.5, "sample_rate": 0.04, "steps": 2250, "accountant": "rdp"},
    )
    assert rdp.accountant in ("opacus-rdp", "dp-accounting-rdp")
    assert rdp.epsilon == pytest.approx(7.3, rel=0.02) and rdp.epsilon > claim.epsilon


def test_a_stored_claim_is_not_recomputed_and_old_specs_still_load():
    claim = DPClaim(delta=1e-5, dp_sgd={"noise_multiplier": 1.1, "sample_rate": 0.02, "epochs": 5})
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
        DPClaim(dp_sgd={"noise_multiplier": 0, "sample_rate": 0.1, "steps": 10})
