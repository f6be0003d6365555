import pytest
import torch

from vlmlearn.masked import (MAEEncoder, MaskedAutoencoder, MaskedCaptionModel, copy_vitmae_weights, mask_tokens,
                             mlm_loss, patchify, random_masking, repair_vitmae_init, unpatchify)
from vlmlearn.models import SmallCNN


def tiny_mae(**kw):
    return MaskedAutoencoder(image_size=16, patch_size=4, width=32, depth=1, heads=2, decoder_width=16,
                             decoder_depth=1, decoder_heads=2, **kw)


def tiny_vitmae():
    from transformers import ViTMAEConfig, ViTMAEForPreTraining

    config = ViTMAEConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32, num_hidden_layers=1,
                          num_attention_heads=2, intermediate_size=64, decoder_hidden_size=16,
                          decoder_num_hidden_layers=1, decoder_num_attention_heads=2, decoder_intermediate_size=32,
                          layer_norm_eps=1e-6, norm_pix_loss=True)
    return ViTMAEForPreTraining(config).eval()


def test_patchify_round_trip_and_layout():
    x = torch.rand(2, 3, 16, 16)
    p = patchify(x, 4)
    assert p.shape == (2, 16, 48)
    assert torch.equal(p[0, 1].reshape(4, 4, 3), x[0, :, 0:4, 4:8].permute(1, 2, 0))  # 2nd patch: row 0, col 1
    assert torch.equal(unpatchify(p, 4), x)
    with pytest.raises(ValueError, match="divisible by 4"):
        patchify(torch.rand(1, 3, 15, 15), 4)


@pytest.mark.parametrize("ratio", [0.0, 0.5, 0.75, 0.9])
def test_random_masking_counts_and_restore(ratio):
    tokens = torch.arange(2 * 64, dtype=torch.float32).reshape(2, 64, 1).expand(-1, -1, 3)
    noise = torch.rand(2, 64)
    kept, mask, ids_restore = random_masking(tokens, ratio, noise)
    keep = int(64 * (1 - ratio))
    assert kept.shape == (2, keep, 3)
    assert (mask.sum(1) == 64 - keep).all()
    shuffle = noise.argsort(1)
    shuffled = tokens.gather(1, shuffle[..., None].expand(-1, -1, 3))
    assert torch.equal(shuffled.gather(1, ids_restore[..., None].expand(-1, -1, 3)), tokens)  # restore inverts
    kept_positions = kept[..., 0].long() % 64
    assert (mask.gather(1, kept_positions) == 0).all()  # the kept tokens are exactly the unmasked ones
    with pytest.raises(ValueError, match="mask_ratio"):
        random_masking(tokens, 1.0)


def test_mae_position_embeddings_are_not_zero():
    model = tiny_mae()
    assert model.encoder.pos_embed.abs().sum() > 0 and model.decoder_pos_embed.abs().sum() > 0
    assert model.encoder.pos_embed[0].unique(dim=0).shape[0] == 16  # every patch has its own position


def test_transformers_vitmae_trap_and_fix():
    hf = tiny_vitmae()
    emb, dec = hf.vit.embeddings, hf.decoder
    projection = emb.patch_embeddings.projection.weight
    xavier_std = (2 / (48 + 32)) ** 0.5  # the patch projection as a linear layer: fan-in 4*4*3, fan-out 32
    assert not 0.8 * xavier_std < projection.std() < 1.2 * xavier_std  # the trap, on transformers 4.x and 5.x
    repair_vitmae_init(hf)
    pos = emb.position_embeddings
    assert pos.abs().sum() > 0 and dec.decoder_pos_embed.abs().sum() > 0, "position embeddings still zero"
    assert pos[0, 1:].unique(dim=0).shape[0] == 16  # every patch has its own position
    try:  # transformers 5.x has a function for its table (and then leaves the table at zero)
        from transformers.models.vit_mae.modeling_vit_mae import build_2d_sinusoidal_position_embedding

        table = build_2d_sinusoidal_position_embedding(4, 4, 32, cls_token=True)
        half = table.shape[-1] // 2  # transformers rotates the halves to match the pretrained layout
        table = torch.cat([table[:, half:], table[:, :half]], -1)
    except ImportError:  # transformers 4.x fills the table itself when it builds the model
        table = tiny_vitmae().vit.embeddings.position_embeddings[0]
    assert torch.allclose(pos[0], table, atol=1e-6)
    assert 0.8 * xavier_std < projection.std() < 1.2 * xavier_std
    assert emb.cls_token.abs().sum() > 0 and dec.mask_token.abs().sum() > 0
    hf.config.name_or_path = "facebook/vit-mae-base"  # as from_pretrained sets it
    with pytest.raises(ValueError, match="loaded from 'facebook/vit-mae-base'"):  # a checkpoint is never overwritten
        repair_vitmae_init(hf)


def test_mae_equals_transformers_with_copied_weights():
    hf = repair_vitmae_init(tiny_vitmae())
    ours = copy_vitmae_weights(tiny_mae(), hf)
    x, noise = torch.rand(3, 3, 16, 16), torch.rand(3, 16)
    ref, out = hf(pixel_values=x, noise=noise), ours(x, noise=noise)
    assert torch.equal(ref.mask, out.mask) and torch.equal(ref.ids_restore, out.ids_restore)
    assert torch.allclose(ref.logits, out.pred, atol=1e-5)
    assert torch.allclose(ref.loss, out.loss, atol=1e-6)
    assert torch.equal(hf.patchify(x), patchify(x, 4))


def test_mae_forward_backward_and_loss_on_masked_patches_only():
    torch.manual_seed(0)
    model = tiny_mae(norm_pix_loss=False)
    x = torch.rand(4, 3, 16, 16)
    out = model(x)
    assert out.pred.shape == (4, 16, 48) and out.mask.shape == (4, 16) and out.loss.ndim == 0
    out.loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    noise = torch.rand(4, 16)
    a = model(x, noise=noise)
    # scaling the targets of the visible patches must not change the loss: it ignores them
    target_only = model.targets(x) * (1 - a.mask[..., None]) * 5 + model.targets(x) * a.mask[..., None]
    per_patch = ((a.pred - target_only) ** 2).mean(-1)
    assert torch.allclose((per_patch * a.mask).sum() / a.mask.sum(), a.loss)
    masked, recon = model.reconstruct(x, noise=noise)
    assert masked.shape == recon.shape == x.shape and 0 <= recon.min() and recon.max() <= 1
    keep = ~a.mask.bool()
    assert torch.allclose(patchify(recon, 4)[keep], patchify(x, 4)[keep])  # visible patches pasted back


def test_norm_pix_eps_keeps_noisy_flat_patches_flat():
    torch.manual_seed(0)
    flat = 0.3 + 0.08 * (torch.rand(1, 3, 4, 4) - 0.5)  # a noisy background patch: variance ~5e-4
    edge = torch.cat([torch.zeros(1, 3, 4, 2), torch.ones(1, 3, 4, 2)], dim=3)  # half dark, half bright
    x = torch.cat([flat, edge], dim=3).repeat(1, 1, 2, 1)  # (1, 3, 8, 8): patches flat, edge, flat, edge
    mae = lambda eps: MaskedAutoencoder(image_size=8, patch_size=4, width=8, depth=1, heads=1, decoder_width=8,
                                        decoder_depth=1, decoder_heads=1, norm_pix_eps=eps)
    paper, floored = mae(1e-6).targets(x), mae(0.01).targets(x)
    assert torch.allclose(paper.std(-1), torch.ones(1, 4), atol=1e-3)  # noise blown up to unit variance
    assert floored[0, 0].std() < 0.5 and floored[0, 1].std() > 0.95  # the floor keeps it flat, edges stay normalised


def test_mae_encoder_features_shape_and_bad_input():
    enc = MAEEncoder(image_size=16, patch_size=4, width=32, depth=1, heads=2)
    assert enc(torch.rand(5, 3, 16, 16)).shape == (5, 32)
    with pytest.raises(ValueError, match="16"):
        enc(torch.rand(5, 3, 32, 32))


def test_mask_tokens_proportions_on_a_large_sample():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 40, (4000, 20), generator=g)
    ids[:, 0], ids[:, -3], ids[:, -2:] = 2, 3, 0  # bos ... eos pad pad
    inputs, labels = mask_tokens(ids, mask_id=4, vocab_size=40, generator=g)
    special = (ids < 5)
    chosen = labels != -100
    assert not (chosen & special).any() and torch.equal(inputs[special], ids[special])
    assert torch.equal(labels[chosen], ids[chosen])
    rate = chosen.sum() / (~special).sum()
    assert abs(rate - 0.15) < 0.005
    as_mask = (inputs[chosen] == 4).float().mean()
    kept = (inputs[chosen] == ids[chosen]).float().mean()
    random_word = 1 - as_mask - kept
    assert abs(as_mask - 0.8) < 0.01 and abs(kept - 0.1 - 0.1 / 35) < 0.01 and abs(random_word - 0.1 + 0.1 / 35) < 0.01
    assert inputs[chosen & (inputs != 4) & (inputs != ids)].min() >= 5  # random words are never special tokens
    assert torch.equal(inputs[~chosen], ids[~chosen])


def test_masked_caption_model_text_only_and_with_image():
    ids = torch.randint(5, 30, (3, 12))
    ids[:, -2:] = 0
    labels = torch.full_like(ids, -100)
    labels[:, 3] = ids[:, 3]
    text = MaskedCaptionModel(vocab_size=30, context_length=12, width=32, layers=1, heads=2)
    logits = text(ids)
    assert logits.shape == (3, 12, 30)
    mlm_loss(logits, labels).backward()
    cnn = SmallCNN(image_size=16, widths=(8, 16), embed_dim=8)
    both = MaskedCaptionModel(vocab_size=30, context_length=12, width=32, layers=1, heads=2, image_encoder=cnn.features,
                              image_channels=16, image_tokens=16)
    loss = mlm_loss(both(ids, torch.rand(3, 3, 16, 16)), labels)
    loss.backward()
    assert cnn.features[0].weight.grad is not None and torch.isfinite(loss)
    with pytest.raises(ValueError, match="images exactly"):
        both(ids)


def test_masked_word_predictions_for_the_explorer(world):
    from vlmlearn.data import WordTokenizer, caption_vocabulary
    from vlmlearn.widgets import masked_word_predictions

    tok = WordTokenizer(caption_vocabulary(), context_length=20)
    text = MaskedCaptionModel(vocab_size=tok.vocab_size, context_length=20, width=32, layers=1, heads=2)
    out = masked_word_predictions({"text": (text, False)}, tok, world.images(1).images[0], "a small red circle on the left", 2, k=3)
    assert len(out["text"]) == 3 and all(w in tok.itos for w, _ in out["text"])
    assert abs(sum(p for _, p in out["text"])) <= 1.0
    with pytest.raises(ValueError, match="position"):
        masked_word_predictions({"text": (text, False)}, tok, None, "a red circle", 3)
