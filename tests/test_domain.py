import numpy as np
import pytest

from mipnet import Box, Domain, InvalidDomainError, LinfBall, Polytope, as_domain


def test_box_broadcasts_scalars():
    d = Box(0, 16, dim=4)
    assert d.dim == 4
    assert np.all(d.lower == 0) and np.all(d.upper == 16)


def test_ball_is_clipped():
    d = LinfBall([0.0, 5.0, 16.0], 1.0, 0, 16)
    np.testing.assert_array_equal(d.lower, [0, 4, 15])
    np.testing.assert_array_equal(d.upper, [1, 6, 16])


def test_polytope_contains_and_sample():
    d = Polytope([[1.0, 1.0]], [1.0], [0, 0], [1, 1])
    X = d.sample(500, seed=0)
    assert X.shape == (500, 2)
    assert np.all(X.sum(1) <= 1 + 1e-12)
    assert d.contains([0.2, 0.2]) and not d.contains([0.9, 0.9])


def test_sample_with_vertices_hits_corners():
    d = Box(-1, 1, dim=3)
    X = d.sample(100, seed=1, include_vertices=True)
    assert np.any(np.all(np.abs(X) == 1, axis=1))
    assert np.all(d.contains(X))


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda: Box(1, 0, dim=2), "lower > upper at input 0"),
        (lambda: Box(0, np.inf, dim=2), "must be finite"),
        (lambda: Box(0, 1), "scalar bounds need the dimension"),
        (lambda: Box([0, 0], [1, 1, 1]), "has 3 entries, expected 2"),
        (lambda: LinfBall([0, 0], -1), "radius must be finite and >= 0"),
        (lambda: LinfBall([20, 20], 1, 0, 16), "does not meet the clipping box"),
        (lambda: Domain([0, 0], [1, 1], A=[[1, 1]]), "give both A and c"),
        (lambda: Polytope([[1, 1, 1]], [1], [0, 0], [1, 1]), "A has 3 columns, the domain has 2 inputs"),
        (lambda: as_domain("box"), "expected a Domain"),
    ],
)
def test_invalid_domains(make, match):
    with pytest.raises(InvalidDomainError, match=match):
        make()


def test_dimension_check():
    with pytest.raises(InvalidDomainError, match="the domain has 2 inputs but the network takes 3"):
        Box(0, 1, dim=2).check_dim(3)
