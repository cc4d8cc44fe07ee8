"""PyTorch reference implementation of RECLF-small (/work/shared/SPEC.md, sections 1-8b).

Used by bench/torch/bench_step.py (timing the training step next to our generated C) and by
bench/torch/check_dump.py (cross-checking our gradients). Needs Debian's PyTorch 1.13:
    apt-get install -y python3-torch python3-numpy ; run with /usr/bin/python3.

    import reclf_torch as R
    model = R.RECLF("reclf", vocab_size=200)          # or reclf-nosrm, reclf-noirm, gloria, convirt
    loss = model(images, tokens)                        # images [B,1,64,64] in [0,1], tokens long [B,L]
    loss = model(images, tokens, neg_tokens=R.side_swap(tokens, left_id, right_id))   # SPEC 8a
    opt, sched = R.make_optimizer(model, steps=1000)    # AdamW + warm-up/cosine of SPEC 8/8b

Conventions (SPEC 8b): model.state_dict() keys are exactly the SPEC names (`image.stem.weight`,
`text.tok_emb`, `text.blocks.0.q.weight`, `srm.Wq`, `irm.Wa`, ...). Linear weights are (out, in);
SRM/IRM matrices are (d_in, d_out) applied as x @ W. The SRM parameters exist only in variants that
use SRM (reclf, reclf-noirm), the IRM ones only in variants using IRM (reclf, reclf-nosrm). Both
encoders, including image.region_proj and text.word_proj, exist in every variant (convirt does not use
those two projections, so their gradients are zero there).

Initialisation (SPEC 8): Conv2d/Linear keep PyTorch's default init (Kaiming-uniform a=sqrt(5) on the
weight, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) on the bias); embeddings N(0, 0.02); GN/LN gamma 1, beta 0;
SRM/IRM matrices U(-1/sqrt(d), 1/sqrt(d)) (what a Linear(d, d) weight gets), except srm.Wo = 0.
Pass random_wo=True to give Wo that same random init (gradient checks, SPEC 8c).

`reassoc=True` computes the same numbers with cheaper association for the d x d products of SRM
((A m) (Wv Wo) instead of (A (m Wv)) Wo) and IRM ((t Wa Wb^T) . m' instead of (t Wa) . (m' Wb)).
The default (False) writes them literally as in the SPEC.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

PAD, CLS, SEP, UNK = 0, 1, 2, 3
VARIANTS = ("reclf", "reclf-nosrm", "reclf-noirm", "gloria", "convirt")

D = 128          # embedding width d
L_DEFAULT = 40   # text length L
TAU1 = 0.1       # word->region attention temperature
TAU_G = 0.07     # global logits
TAU_L = 0.1      # local logits
TAU2 = 5.0       # GLoRIA log-sum-exp sharpness
GLORIA_SCALE = 10.0
LAMBDA = 1.0
EPS_NORM = 1e-6
EPS_GN_LN = 1e-5


# --------------------------------------------------------------------------- helpers
def l2norm(x, dim=-1):
    """norm(x) = x / max(||x||, 1e-6)."""
    return x / torch.linalg.vector_norm(x, dim=dim, keepdim=True).clamp_min(EPS_NORM)


def masked_softmax(x, mask, dim=-1):
    """Softmax over `dim` restricted to mask==True; a row with no valid entry gives zeros (no NaN).

    Masked logits are filled with the dtype's most negative finite value, so a fully masked row
    becomes uniform before the final multiply by the mask zeroes it; gradients stay finite."""
    x = x.masked_fill(~mask, torch.finfo(x.dtype).min)
    return torch.softmax(x, dim=dim) * mask.to(x.dtype)


def word_mask_from_tokens(tokens):
    """[B, L] ids -> [B, L-1] bool: positions 1..L-1 holding a real token (not [SEP], not [PAD])."""
    w = tokens[:, 1:]
    return (w != PAD) & (w != SEP)


def side_swap(tokens, left_id, right_id):
    """SPEC 8a: for every report naming a side, a copy with every left <-> right swapped -> [M, L]."""
    has_side = ((tokens == left_id) | (tokens == right_id)).any(dim=1)
    t = tokens[has_side]
    out = t.clone()
    out[t == left_id] = right_id
    out[t == right_id] = left_id
    return out


def cross_entropy_diag(x):
    """Mean cross-entropy of the rows of x [N, C] (N <= C), row n's target being column n."""
    return F.cross_entropy(x, torch.arange(x.shape[0], device=x.device))


def ce2(x):
    """CE2 (SPEC 6) for a square B x B matrix, or CE2n (SPEC 8a) for (B+M) x B texts x images:
    1/2 (CE over the rows of the B real reports + CE over the B image columns against all texts)."""
    b = x.shape[1]
    return 0.5 * (cross_entropy_diag(x[:b]) + cross_entropy_diag(x.t()))


# --------------------------------------------------------------------------- image encoder
def conv3x3(cin, cout, stride=1):
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=True)


def gn(c):
    return nn.GroupNorm(8, c, eps=EPS_GN_LN, affine=True)


class ResBlock(nn.Module):
    """ReLU(x + GN(conv3x3(ReLU(GN(conv3x3(x))))))"""

    def __init__(self, c):
        super().__init__()
        self.conv1, self.gn1 = conv3x3(c, c), gn(c)
        self.conv2, self.gn2 = conv3x3(c, c), gn(c)

    def forward(self, x):
        h = F.relu(self.gn1(self.conv1(x)))
        return F.relu(x + self.gn2(self.conv2(h)))


class Stage(nn.Module):
    """conv3x3 stride 2 -> GN -> ReLU -> ResBlock"""

    def __init__(self, cin, cout):
        super().__init__()
        self.down, self.gn, self.res = conv3x3(cin, cout, 2), gn(cout), ResBlock(cout)

    def forward(self, x):
        return self.res(F.relu(self.gn(self.down(x))))


class ImageEncoder(nn.Module):
    def __init__(self, d=D):
        super().__init__()
        self.stem, self.stem_gn = conv3x3(1, 32), gn(32)
        self.stage1, self.stage2, self.stage3 = Stage(32, 32), Stage(32, 64), Stage(64, 128)
        self.region_proj = nn.Linear(128, d)
        self.global_proj = nn.Linear(128, d)

    def forward(self, images):
        """images [B,1,H,W] in [0,1] -> V [B,R,d] (region j = 8y+x), v_g [B,d]."""
        x = (images - 0.5) / 0.25
        f0 = F.relu(self.stem_gn(self.stem(x)))
        f3 = self.stage3(self.stage2(self.stage1(f0)))
        regions = f3.flatten(2).transpose(1, 2)              # [B, 64, 128], j = 8y + x
        V = self.region_proj(regions)
        v_g = self.global_proj(regions.mean(dim=1))
        return V, v_g


# --------------------------------------------------------------------------- text encoder
class Block(nn.Module):
    """Pre-LN transformer block: h + MHA(LN(h)), then h + FFN(LN(h)); 4 heads of 32."""

    def __init__(self, d=D, heads=4, ffn=512):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=EPS_GN_LN)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        self.ln2 = nn.LayerNorm(d, eps=EPS_GN_LN)
        self.fc1, self.fc2 = nn.Linear(d, ffn), nn.Linear(ffn, d)

    def forward(self, h, key_mask):
        B, L, d = h.shape
        hd = d // self.heads
        x = self.ln1(h)
        q, k, v = (p(x).view(B, L, self.heads, hd).transpose(1, 2) for p in (self.q, self.k, self.v))
        scores = q @ k.transpose(-1, -2) / math.sqrt(hd)                 # [B, heads, L, L]
        att = masked_softmax(scores, key_mask[:, None, None, :], dim=-1)  # hide [PAD] keys only
        ctx = (att @ v).transpose(1, 2).reshape(B, L, d)
        h = h + self.o(ctx)
        return h + self.fc2(F.gelu(self.fc1(self.ln2(h)), approximate="tanh"))


class TextEncoder(nn.Module):
    def __init__(self, vocab_size, length=L_DEFAULT, d=D, n_blocks=2):
        super().__init__()
        self.tok_emb = nn.Parameter(torch.randn(vocab_size, d) * 0.02)
        self.pos_emb = nn.Parameter(torch.randn(length, d) * 0.02)
        self.blocks = nn.ModuleList(Block(d) for _ in range(n_blocks))
        self.ln_f = nn.LayerNorm(d, eps=EPS_GN_LN)
        self.global_proj = nn.Linear(d, d)
        self.word_proj = nn.Linear(d, d)

    def forward(self, tokens):
        """tokens [B,L] -> t_g [B,d], W [B,L-1,d]."""
        L = tokens.shape[1]
        h = self.tok_emb[tokens] + self.pos_emb[:L]
        key_mask = tokens != PAD
        for blk in self.blocks:
            h = blk(h, key_mask)
        H = self.ln_f(h)
        return self.global_proj(H[:, 0]), self.word_proj(H[:, 1:])


# --------------------------------------------------------------------------- relation modules
def _dxd(d, zero=False):
    w = torch.empty(d, d)
    if zero:
        return nn.Parameter(w.zero_())
    return nn.Parameter(w.uniform_(-1 / math.sqrt(d), 1 / math.sqrt(d)))


class SRM(nn.Module):
    """Semantic-relation reasoning (SPEC 4): m'_k = m_k + (sum_k' A[k,k'] m_k' Wv) Wo."""

    def __init__(self, d=D, random_wo=False):
        super().__init__()
        self.Wq, self.Wk, self.Wv = _dxd(d), _dxd(d), _dxd(d)
        self.Wo = _dxd(d, zero=not random_wo)

    def forward(self, m, W, wmask, reassoc=False):
        """m [T,B,K,d] matchings of text r with image i; W [T,K,d] word features; wmask [T,K]."""
        d = W.shape[-1]
        logits = (W @ self.Wq) @ (W @ self.Wk).transpose(-1, -2) / math.sqrt(d)    # [T, K, K]
        A = masked_softmax(logits, wmask[:, None, :], dim=-1)                      # over k'
        if reassoc:
            return m + torch.einsum("rkl,rild->rikd", A, m) @ (self.Wv @ self.Wo)
        return m + torch.einsum("rkl,rild->rikd", A, m @ self.Wv) @ self.Wo


class IRM(nn.Module):
    """Importance-relation reasoning (SPEC 5): e_k = (t_g Wa) . (m'_k Wb) / sqrt(d)."""

    def __init__(self, d=D):
        super().__init__()
        self.Wa, self.Wb = _dxd(d), _dxd(d)

    def forward(self, m2, t_g, reassoc=False):
        """m2 [T,B,K,d], t_g [T,d] -> logits e [T,B,K] (masking is done by the caller)."""
        d = t_g.shape[-1]
        u = t_g @ self.Wa                                                          # [T, d]
        if reassoc:
            return torch.einsum("rikd,rd->rik", m2, u @ self.Wb.t()) / math.sqrt(d)
        return torch.einsum("rikd,rd->rik", m2 @ self.Wb, u) / math.sqrt(d)


# --------------------------------------------------------------------------- the model
class RECLF(nn.Module):
    def __init__(self, variant="reclf", vocab_size=200, length=L_DEFAULT, d=D,
                 random_wo=False, reassoc=False):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")
        self.variant, self.reassoc = variant, reassoc
        self.image = ImageEncoder(d)
        self.text = TextEncoder(vocab_size, length, d)
        if variant in ("reclf", "reclf-noirm"):
            self.srm = SRM(d, random_wo)
        if variant in ("reclf", "reclf-nosrm"):
            self.irm = IRM(d)

    def local_logits(self, V, W, t_g, wmask):
        """Lm [T, B] (texts x images) from V [B,R,d], W [T,K,d], t_g [T,d], wmask [T,K] bool."""
        Wn, Vn = l2norm(W), l2norm(V)
        # SPEC 3: a_kj = softmax_j(norm(W_rk) . norm(V_ij) / tau1), c_k = sum_j a_kj V_ij
        a = torch.softmax(torch.einsum("rkd,ijd->rikj", Wn, Vn) / TAU1, dim=-1)   # [T, B, K, R]
        c = torch.einsum("rikj,ijd->rikd", a, V)                                    # [T, B, K, d]
        m = Wn[:, None] * l2norm(c)                                                 # [T, B, K, d]
        wm = wmask[:, None, :].expand(-1, V.shape[0], -1)                           # [T, B, K]
        if self.variant == "gloria":
            s = m.sum(-1)                                                           # cos(W_rk, c_k)
            S = torch.logsumexp((TAU2 * s).masked_fill(~wm, torch.finfo(s.dtype).min), dim=-1) / TAU2
            S = torch.where(wm.any(-1), S, torch.zeros_like(S))                    # no valid word
            return GLORIA_SCALE * S
        m2 = self.srm(m, W, wmask, self.reassoc) if hasattr(self, "srm") else m   # SPEC 4
        s = m2.sum(-1)                                                              # [T, B, K]
        if hasattr(self, "irm"):                                                    # SPEC 5
            beta = masked_softmax(self.irm(m2, t_g, self.reassoc), wm, dim=-1)
        else:                                                                       # reclf-noirm
            beta = wm.to(s.dtype) / wm.sum(-1, keepdim=True).clamp_min(1).to(s.dtype)
        return (beta * s).sum(-1) / TAU_L

    def forward(self, images, tokens, neg_tokens=None, word_mask=None, return_parts=False):
        """Loss of SPEC 6 (CE2n of SPEC 8a when neg_tokens [M,L] are given).

        images [B,1,H,W] in [0,1]; tokens [B,L] long; word_mask optional [B(+M),L-1] (default: from
        tokens). With return_parts=True returns (loss, G, Lm) with Lm None for convirt."""
        if neg_tokens is not None and neg_tokens.shape[0] > 0:
            tokens = torch.cat([tokens, neg_tokens.to(tokens.dtype)], dim=0)
        if word_mask is None:
            word_mask = word_mask_from_tokens(tokens)
        word_mask = word_mask.bool()
        V, v_g = self.image(images)
        t_g, W = self.text(tokens.long())
        G = l2norm(t_g) @ l2norm(v_g).t() / TAU_G                                   # [T, B]
        loss = ce2(G)
        Lm = None
        if self.variant != "convirt":
            Lm = self.local_logits(V, W, t_g, word_mask)
            loss = loss + LAMBDA * ce2(Lm)
        return (loss, G, Lm) if return_parts else loss


# --------------------------------------------------------------------------- training set-up
def decay_names(model):
    """SPEC 8b: weight decay on Linear/conv weights and the SRM/IRM matrices only (not on biases,
    GN/LN gamma/beta, or the token and position embeddings)."""
    names = {f"{mn}.weight" for mn, mod in model.named_modules() if isinstance(mod, (nn.Linear, nn.Conv2d))}
    names |= {n for n, _ in model.named_parameters() if n.startswith(("srm.", "irm."))}
    return names


def lr_factor(t, steps):
    """SPEC 8b schedule, t = steps already taken: linear warm-up then cosine to 0 at the last step."""
    warm = max(round(0.05 * steps), min(100, steps))
    if t < warm:
        return (t + 1) / warm
    if steps - 1 <= warm:
        return 1.0
    return 0.5 * (1 + math.cos(math.pi * (t - warm) / (steps - 1 - warm)))


def make_optimizer(model, steps, lr=1e-3, weight_decay=0.01):
    """AdamW(0.9, 0.999, eps 1e-8) with decay on weights only, and the SPEC 8b LR schedule."""
    named, dec = list(model.named_parameters()), decay_names(model)
    groups = [
        {"params": [p for n, p in named if n in dec], "weight_decay": weight_decay},
        {"params": [p for n, p in named if n not in dec], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: lr_factor(t, steps))
    return opt, sched


def train_step(model, opt, sched, images, tokens, neg_tokens=None, clip=1.0):
    """One full step: forward, backward, clip the global grad norm at `clip`, AdamW, schedule."""
    opt.zero_grad(set_to_none=True)
    loss = model(images, tokens, neg_tokens)
    loss.backward()
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    sched.step()
    return loss.detach(), gnorm


# --------------------------------------------------------------------------- synthetic batches
def random_batch(batch=32, size=64, length=L_DEFAULT, vocab_size=200, seed=0, min_len=15):
    """Seeded random batch: images uniform [0,1] [B,1,size,size]; tokens int64 [B,L] as
    [CLS] w... [SEP] [PAD]... with a total length (CLS and SEP included) uniform in min_len..L,
    words uniform over the vocabulary ids 4..vocab_size-1."""
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(batch, 1, size, size, generator=g)
    tokens = torch.zeros(batch, length, dtype=torch.long)
    lens = torch.randint(min_len, length + 1, (batch,), generator=g)
    for b, n in enumerate(lens.tolist()):
        tokens[b, 0] = CLS
        tokens[b, 1:n - 1] = torch.randint(UNK + 1, vocab_size, (n - 2,), generator=g)
        tokens[b, n - 1] = SEP
    return images, tokens
