import faiss
import numpy as np
import pytest

from ace_core.errors import AceInputError
from ace_core.ids.kmeans import KMeansConfig, auto_k, fit_kmeans
from ace_core.ids.quality import faiss_rq_relative_error, relative_error
from ace_core.ids.rqvae import RQVAEConfig, rq_decode, rq_encode, train_rqvae
from ace_core.ids.semantic_ids import (
    SemanticIDConfig,
    assign_suffixes,
    fit_semantic_ids,
    l2n,
)

FAST_RQ = RQVAEConfig(levels=3, codebook_size=16, max_epochs=15, patience=3, batch_size=512)


def clustered(n=1200, d=32, k=12, noise=0.3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((k, d))
    x = centers[rng.integers(0, k, n)] + noise * rng.standard_normal((n, d))
    return l2n(x.astype(np.float32))


def ids_for(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.bytes(16).hex() for _ in range(n)]


def test_coarse_assignment_equals_faiss_kmeans():
    x = clustered()
    ours = fit_kmeans(x, KMeansConfig(k=10, niter=15, seed=3))
    ref = faiss.Kmeans(x.shape[1], 10, niter=15, seed=3)
    ref.train(x)
    _, ref_assign = ref.index.search(x, 1)
    np.testing.assert_array_equal(ours.assignment, ref_assign[:, 0])
    np.testing.assert_allclose(ours.centroids, ref.centroids, atol=1e-6)


def test_auto_k_scales_and_small_corpora_reduce_k(caplog):
    assert auto_k(100) < auto_k(10_000) < auto_k(1_000_000) <= 1024
    res = fit_kmeans(clustered(n=5), KMeansConfig(k=50))
    assert res.centroids.shape[0] == 5
    assert sum("using k=5" in r.getMessage() for r in caplog.records) == 1


def test_rqvae_close_to_faiss_residual_quantizer_and_better_than_one_level():
    x = clustered(n=2000, d=32, noise=0.5, seed=1)
    fit = train_rqvae(x, FAST_RQ)
    codes = rq_encode(fit.model, x)
    assert codes.shape == (2000, 3) and codes.max() < 16
    ours = relative_error(x, rq_decode(fit.model, codes))
    ref = faiss_rq_relative_error(x, 3, 16)
    one_level = faiss_rq_relative_error(x, 1, 16)
    assert ours <= 1.2 * ref, (ours, ref)
    assert ours < one_level


def test_rqvae_round_trip_and_determinism():
    x = clustered(n=600, seed=2)
    a, b = train_rqvae(x, FAST_RQ), train_rqvae(x, FAST_RQ)
    ca, cb = rq_encode(a.model, x), rq_encode(b.model, x)
    np.testing.assert_array_equal(ca, cb)
    # decode(encode(x)) is the quantised reconstruction: re-encoding it is stable for most rows
    again = rq_encode(a.model, rq_decode(a.model, ca))
    assert (again == ca).all(axis=1).mean() > 0.9


def test_dead_codes_are_replaced():
    # 3 distinct points, 16 codes: most codes start dead and get replaced
    x = np.repeat(clustered(n=3, seed=4), 100, axis=0)
    fit = train_rqvae(x, FAST_RQ)
    assert fit.dead_codes_replaced > 0


def test_ids_unique_with_suffix_rule():
    ids = ["c", "a", "d", "b", "e"]
    coarse = np.array([1, 1, 0, 1, 0])
    fine = np.array([[2, 2], [2, 2], [5, 5], [2, 2], [5, 6]])
    suffix = assign_suffixes(ids, coarse, fine)
    assert dict(zip(ids, suffix)) == {"a": 0, "b": 1, "c": 2, "d": 0, "e": 0}


@pytest.fixture(scope="module")
def fitted():
    x = clustered(n=800, seed=5)
    ids = ids_for(800, seed=5)
    cfg = SemanticIDConfig(kmeans=KMeansConfig(k=8), rqvae=FAST_RQ)
    return ids, x, cfg, *fit_semantic_ids(ids, x, cfg)


def test_fit_gives_unique_deterministic_ids_and_a_report(fitted):
    ids, x, cfg, indexer, sids = fitted
    assert len(set(sids.sids)) == len(ids) == len(sids.sids)
    assert sids.item_ids == sorted(ids)
    _, again = fit_semantic_ids(ids, x, cfg)
    assert again.sids == sids.sids
    r = indexer.report
    for key in (
        "n_items",
        "k",
        "levels",
        "codebook_size",
        "collision_rate",
        "max_suffix",
        "utilization",
        "perplexity",
        "rel_recon_error",
        "faiss_rq_rel_recon_error",
    ):
        assert key in r
    assert r["rel_recon_error"] <= 1.2 * r["faiss_rq_rel_recon_error"]
    assert len(r["utilization"]) == 3 and all(0 < u <= 1 for u in r["utilization"])
    assert r["collision_rate"] == pytest.approx((sids.suffix > 0).mean())
    assert 0 <= r["faiss_rq_collision_rate"] <= 1 and len(r["faiss_rq_perplexity"]) == 3
    # our codes separate items about as well as faiss' codes on the same residuals
    assert r["collision_rate"] <= r["faiss_rq_collision_rate"] + 0.05


def test_save_load_reproduces_ids_bit_for_bit(tmp_path, fitted):
    from ace_index.storage.formats.codebooks import load_indexer, save_indexer
    from ace_index.storage.formats.semantic_id_table import read_semantic_ids, write_semantic_ids

    ids, x, _, indexer, sids = fitted
    save_indexer(indexer, tmp_path / "codebooks")
    write_semantic_ids(sids, tmp_path / "semantic_ids.parquet")
    loaded = load_indexer(tmp_path / "codebooks")
    back = read_semantic_ids(tmp_path / "semantic_ids.parquet")
    assert back.sids == sids.sids and back.item_ids == sids.item_ids
    order = np.argsort(ids)
    c1, f1 = indexer.encode(x[order])
    c2, f2 = loaded.encode(x[order])
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(c1, sids.coarse)
    np.testing.assert_array_equal(f1, sids.fine)


def test_incremental_assignment_keeps_existing_ids(fitted):
    ids, x, _, indexer, sids = fitted
    before = list(sids.sids)
    # new items: near-copies of existing ones (forced collisions) plus fresh points
    new_x = np.concatenate([x[:20] + 1e-4, clustered(n=30, seed=9)])
    new_ids = ids_for(50, seed=99)
    added = indexer.assign(new_ids, new_x, sids)
    merged = sids.concat(added)
    assert len(set(merged.sids)) == len(merged.sids) == 850
    assert sids.sids == before
    old = dict(zip(merged.item_ids, merged.sids))
    assert all(old[i] == s for i, s in zip(sids.item_ids, before))
    assert added.suffix.max() >= 1  # the near-copies took the next free suffix
    with pytest.raises(AceInputError, match="already have IDs"):
        indexer.assign(ids[:1], x[:1], sids)


@pytest.mark.parametrize("mode", ["no_coarse", "hkmeans", "random"])
def test_ablation_modes_give_unique_ids_of_the_same_shape(mode):
    x = clustered(n=300, seed=6)
    ids = ids_for(300, seed=6)
    _, sids = fit_semantic_ids(
        ids, x, SemanticIDConfig(mode=mode, kmeans=KMeansConfig(k=6), rqvae=FAST_RQ)
    )
    assert sids.fine.shape == (300, 3) and len(set(sids.sids)) == 300
    if mode == "no_coarse":
        assert (sids.coarse == 0).all()


def test_degenerate_data_identical_vectors_and_tiny_corpus():
    x = np.repeat(clustered(n=2, seed=7), [40, 1], axis=0)
    ids = ids_for(41, seed=7)
    _, sids = fit_semantic_ids(ids, x, SemanticIDConfig(kmeans=KMeansConfig(k=16), rqvae=FAST_RQ))
    assert len(set(sids.sids)) == 41 and sids.suffix.max() == 39
    _, one = fit_semantic_ids(ids[:1], x[:1], SemanticIDConfig(rqvae=FAST_RQ))
    assert one.sids == ["0.0.0.0.0"]


@pytest.mark.parametrize(
    "bad, match",
    [
        ("nan", "NaN/inf"),
        ("zero", "zero norm"),
        ("dup", "duplicate item_ids"),
        ("empty", "no embeddings"),
    ],
)
def test_bad_embeddings_fail_before_training_naming_items(bad, match):
    x = clustered(n=10, seed=8)
    ids = ids_for(10, seed=8)
    if bad == "nan":
        x[3, 0] = np.nan
    elif bad == "zero":
        x[4] = 0
    elif bad == "dup":
        ids[5] = ids[6]
    elif bad == "empty":
        ids, x = [], np.zeros((0, 32), np.float32)
    with pytest.raises(AceInputError, match=match) as e:
        fit_semantic_ids(ids, x, SemanticIDConfig(rqvae=FAST_RQ))
    if bad in ("nan", "zero", "dup"):
        assert ids[{"nan": 3, "zero": 4, "dup": 6}[bad]][:12] in str(e.value)


def test_wrong_dimension_is_refused(fitted):
    _, _, _, indexer, sids = fitted
    with pytest.raises(AceInputError, match="expects 32-d"):
        indexer.assign(["x" * 64], np.ones((1, 16), np.float32), sids)


def test_faiss_reference_codes_unpack_to_what_faiss_decodes():
    import faiss

    from ace_core.ids.quality import unpack_codes

    x = np.random.default_rng(3).standard_normal((600, 16)).astype(np.float32)
    for nbits in (3, 4, 8):
        rq = faiss.ResidualQuantizer(16, 3, nbits)
        rq.cp.min_points_per_centroid = 1
        rq.train(x)
        packed = rq.compute_codes(x)
        codes = unpack_codes(packed, 3, nbits)
        assert codes.max() < 2**nbits
        cb = faiss.vector_to_array(rq.codebooks).reshape(3 * 2**nbits, 16)
        ours = sum(cb[lv * 2**nbits + codes[:, lv]] for lv in range(3))
        np.testing.assert_allclose(ours, rq.decode(packed), atol=1e-5)


@pytest.mark.parametrize("per_code", [8, 100])
def test_codebooks_start_from_kmeans_on_init_points_per_code_training_points(per_code):
    import torch

    x = np.random.default_rng(5).standard_normal((3000, 16)).astype(np.float32)
    cfg = RQVAEConfig(codebook_size=16, batch_size=64, max_epochs=0, init_points_per_code=per_code)
    fit = train_rqvae(x, cfg)
    perm = torch.randperm(3000, generator=torch.Generator().manual_seed(cfg.seed)).numpy()
    train = x[perm[300:]]  # the 10% held out for early stopping come first
    sample = train[: max(cfg.batch_size, per_code * 16)]
    km = fit_kmeans(sample, KMeansConfig(k=16, niter=20, seed=cfg.seed))
    np.testing.assert_allclose(fit.model.codebooks[0].detach().numpy(), km.centroids, atol=1e-5)


def test_faiss_rq_init_starts_from_faiss_codebooks_and_is_deterministic():
    import torch

    from ace_core.ids.rqvae import train_faiss_rq

    x = clustered(n=900, seed=6)
    cfg = RQVAEConfig(codebook_size=16, batch_size=64, max_epochs=0, init="faiss_rq")
    fit = train_rqvae(x, cfg)
    perm = torch.randperm(900, generator=torch.Generator().manual_seed(cfg.seed)).numpy()
    sample = x[perm[90:]][: max(cfg.batch_size, cfg.init_points_per_code * 16)]
    rq = train_faiss_rq(sample, 3, 16, cfg.seed)  # kept alive: codebooks is a view
    ref = faiss.vector_to_array(rq.codebooks)
    np.testing.assert_allclose(fit.model.codebooks.detach().numpy().ravel(), ref, atol=1e-5)
    trained = RQVAEConfig(**{**FAST_RQ.__dict__, "init": "faiss_rq"})
    a, b = train_rqvae(x, trained), train_rqvae(x, trained)
    np.testing.assert_array_equal(rq_encode(a.model, x), rq_encode(b.model, x))
    with pytest.raises(AceInputError, match="unknown RQ-VAE init"):
        train_rqvae(x, RQVAEConfig(init="pq"))


@pytest.mark.parametrize("n, codes", [(50, 8), (88, 16), (300, 64), (2000, 256)])
def test_codebooks_are_sized_to_the_corpus_and_no_level_is_dead(n, codes):
    x = clustered(n=n, d=64, k=12, noise=0.5, seed=n)
    indexer, sids = fit_semantic_ids(ids_for(n), x, SemanticIDConfig())
    report = indexer.report
    assert report["codebook_size"] == codes  # at least 4 items per code, at most 256
    assert min(report["perplexity"]) >= 1.5, report["perplexity"]  # every level carries codes
    assert sids.fine.max() < codes
