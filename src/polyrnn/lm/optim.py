r"""Adam with global gradient-norm clipping and decoupled weight decay, functional and
written once against the Array API.

.. math::
    g &\leftarrow g \cdot \min\Bigl(1, \frac{c}{\lVert g \rVert_2 + 10^{-6}}\Bigr)
        \quad\text{(over all parameters at once)} \\
    m &\leftarrow \beta_1 m + (1 - \beta_1) g, \qquad
    v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
    p &\leftarrow (1 - \eta \lambda)\, p - \frac{\eta}{1 - \beta_1^t} \cdot
        \frac{m}{\sqrt{v} / \sqrt{1 - \beta_2^t} + \epsilon}

which is :func:`torch.nn.utils.clip_grad_norm_` followed by :class:`torch.optim.Adam`
(weight decay :math:`\lambda = 0`) or :class:`torch.optim.AdamW` (Loshchilov & Hutter
2019), expression for expression.  State in, state out: nothing is modified in place, so the
same code runs on every library and inside :func:`jax.jit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from .. import _tree
from .._compat import Array, array_namespace
from . import _checks

__all__ = ["Adam", "AdamState"]


class AdamState(NamedTuple):
    """The optimiser's state: a pytree, like the parameters."""

    count: Array
    """The number of updates so far, a 0-d integer array."""
    m: Any
    """First-moment estimates, of the structure of the parameters."""
    v: Any
    """Second-moment estimates, of the structure of the parameters."""


@dataclass(frozen=True)
class Adam:
    """Adam (Kingma & Ba, 2015), optionally after clipping the global gradient norm.

    Parameters
    ----------
    beta1, beta2 : float
        Decay rates of the moment estimates.
    eps : float
        Added to the denominator.
    clip_norm : float or None
        Largest global L2 norm of the gradient; ``None`` disables clipping.
    weight_decay : float
        λ >= 0: each step first multiplies every parameter by ``1 - lr * λ`` (decoupled
        from the gradient, as :class:`torch.optim.AdamW`); 0 is plain Adam.

    Examples
    --------
    One step on ``f(p) = p**2 / 2`` (gradient ``p``) moves ``p`` by the learning rate:

    >>> opt = polyrnn.lm.Adam(clip_norm=None)
    >>> p = {"w": np.array([3.0, -2.0])}
    >>> p, state, norm = opt.update(p, p, opt.init(p), lr=0.1)
    >>> p["w"].round(6), float(norm)
    (array([ 2.9, -1.9]), 3.605551275463989)
    """

    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8
    clip_norm: float | None = 1.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        for name in ("beta1", "beta2"):
            if not _checks.real(name, getattr(self, name)) < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        _checks.real("eps", self.eps)
        if self.clip_norm is not None:
            _checks.real("clip_norm", self.clip_norm, above=True)
        _checks.real("weight_decay", self.weight_decay)

    def init(self, params: Any) -> AdamState:
        """Zero moments of the structure, library and dtypes of ``params``."""
        leaves, _ = _tree.flatten(params)
        xp = array_namespace(*leaves)

        def zeros(a: Array) -> Array:
            return xp.zeros_like(a)

        return AdamState(
            xp.asarray(0, dtype=xp.int32), _tree.map_(zeros, params), _tree.map_(zeros, params)
        )

    def update(
        self, params: Any, grads: Any, state: AdamState, *, lr: float | Array
    ) -> tuple[Any, AdamState, Array]:
        """One step.

        Parameters
        ----------
        params, grads : pytrees of arrays
            Of one structure, library and dtype.
        state : AdamState
            From :meth:`init` or the previous :meth:`update`.
        lr : float or 0-d array
            The learning rate of this step (a schedule varies it between calls).

        Returns
        -------
        params, state : the updated parameters and state.
        grad_norm : 0-d array
            The global L2 norm of ``grads`` before clipping.
        """
        g_leaves, _ = _tree.flatten(grads)
        p_leaves, rebuild = _tree.flatten(params)
        xp = array_namespace(*p_leaves)
        dtype = p_leaves[0].dtype
        norm = xp.sqrt(sum(xp.sum(g * g) for g in g_leaves))
        if self.clip_norm is not None:
            coef = xp.minimum(self.clip_norm / (norm + 1e-6), xp.ones_like(norm))
            g_leaves = [g * coef for g in g_leaves]
        count = state.count + 1
        t = xp.astype(count, dtype)
        bc1 = 1.0 - xp.pow(xp.asarray(self.beta1, dtype=dtype), t)
        bc2 = 1.0 - xp.pow(xp.asarray(self.beta2, dtype=dtype), t)
        step_size = lr / bc1
        bc2_sqrt = xp.sqrt(bc2)
        keep = 1.0 - lr * self.weight_decay
        new_p, new_m, new_v = [], [], []
        for p, g, m, v in zip(
            p_leaves, g_leaves, _tree.flatten(state.m)[0], _tree.flatten(state.v)[0], strict=True
        ):
            m_t = self.beta1 * m + (1.0 - self.beta1) * g
            v_t = self.beta2 * v + (1.0 - self.beta2) * (g * g)
            decayed = p * keep if self.weight_decay else p
            new_p.append(decayed - step_size * (m_t / (xp.sqrt(v_t) / bc2_sqrt + self.eps)))
            new_m.append(m_t)
            new_v.append(v_t)
        return rebuild(new_p), AdamState(count, rebuild(new_m), rebuild(new_v)), norm
