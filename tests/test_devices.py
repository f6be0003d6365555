"""Device audit: every step function and helper puts the tensors it makes on its model's device.

No GPU is needed to catch the bugs a GPU would: with the model on the `meta` device, any CPU tensor
that meets it raises "... is not on the expected device ...". Errors about *reading* meta data
(`.item()`, converting to numpy) are expected and ignored; device mismatches fail the test. Where
CUDA or MPS is present, the same calls run there for real.
"""
import functools

import pytest
import torch

from vlmlearn.augment import shapes_strong_augment
from vlmlearn.clip_models import plain_transform
from vlmlearn.contrastive import (
    DualEncoder,
    binding_accuracy,
    clip_step,
    consistency_clip_step,
    image_text_similarity,
    object_prompts,
    pair_similarity,
    retrieval_metrics,
    siglip_step,
    zero_shot_accuracy,
)
from vlmlearn.data import (
    ANSWERS,
    SAMPLES_DIR,
    Collate,
    ShapesWorld,
    StepLoader,
    TrainPairs,
    WordTokenizer,
    caption_vocabulary,
    read_pairs,
)
from vlmlearn.eval_retrieval import retrieval_scores
from vlmlearn.generative import Captioner, CaptionToImage, captioning_step, text_to_image_step
from vlmlearn.label_efficiency import load_pretrained, run_digits, run_shapes
from vlmlearn.mae import MaskedAutoencoder, mae_step
from vlmlearn.mlm import MaskedCaptionModel, predict_each_word
from vlmlearn.models import SmallCNN, TextTransformer
from vlmlearn.optim import clamp_logit_scales_, param_groups
from vlmlearn.semi import (
    ema_teacher,
    fixmatch_step,
    mean_teacher_decay,
    mean_teacher_step,
    pi_model_step,
    predict_probs,
    pseudo_label_step,
    self_training_round,
    supervised_step,
)
from vlmlearn.train import train
from vlmlearn.vqa import VQAByMatching, VQAModel, answer_candidates, answer_statements, vqa_accuracy, vqa_step
from vlmlearn.widgets import caption_painter, mask_ratio_explorer, masked_word_predictions

MISMATCH = ("expected device", "same device", "at least two devices")
DEVICES = ["meta"] + (["cuda"] if torch.cuda.is_available() else []) + (
    ["mps"] if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available() else [])

WORLD = ShapesWorld(seed=0, image_size=16)
PAIRS = WORLD.pairs(8)
VQA = WORLD.vqa(8)
SAMPLES = read_pairs("coco", SAMPLES_DIR / "coco" / "captions.json")
TOK = WordTokenizer.from_texts(caption_vocabulary() + VQA.questions + list(ANSWERS), context_length=20)


def dual(image_size=16):
    torch.manual_seed(0)
    return DualEncoder(SmallCNN(image_size=image_size, widths=(8, 16), embed_dim=16),
                       TextTransformer(vocab_size=TOK.vocab_size, context_length=20, width=16, layers=1, heads=2,
                                       embed_dim=16))


def classifier():
    torch.manual_seed(0)
    return SmallCNN(image_size=16, widths=(8, 16), embed_dim=5)


def on(device, *tensors):
    return tuple(t.to(device) for t in tensors)


def steps(device):
    """(name, model, step function, batch already on the device, as `train` passes it)."""
    images, ids = on(device, PAIRS.images, TOK(PAIRS.captions))
    x, y, u = on(device, PAIRS.images, torch.arange(8) % 5, WORLD.images(16).images)
    student = classifier().to(device)
    vqa_model = VQAModel.from_dual_encoder(dual(), num_answers=len(ANSWERS)).to(device)
    matcher = VQAByMatching.from_dual_encoder(dual()).to(device)
    vqa_batch = on(device, VQA.images, TOK(VQA.questions), VQA.labels, answer_candidates(VQA.questions))
    statements = on(device, VQA.images, answer_statements(VQA.questions, TOK), VQA.labels)
    return [
        ("clip_step", dual().to(device), clip_step, (images, ids)),
        ("siglip_step", DualEncoder(dual().image_encoder, dual().text_encoder, logit_bias=-10.0).to(device),
         siglip_step, (images, ids)),
        ("consistency_clip_step", dual().to(device), consistency_clip_step, (images, ids, ids)),
        ("supervised_step", classifier().to(device), supervised_step, (x, y, u)),
        ("pi_model_step", classifier().to(device), pi_model_step, (x, y, u)),
        ("mean_teacher_step", student, functools.partial(mean_teacher_step, teacher=ema_teacher(student)), (x, y, u)),
        ("fixmatch_step", classifier().to(device), fixmatch_step, (x, y, u)),
        ("pseudo_label_step", classifier().to(device), pseudo_label_step, (x, y, u)),
        ("pseudo_label_step, thresholded", classifier().to(device), functools.partial(pseudo_label_step, threshold=0.5),
         (x, y, u)),
        ("vqa_step, head", vqa_model, vqa_step, vqa_batch),
        ("vqa_step, matching", matcher, vqa_step, statements),
        ("captioning_step", Captioner(vocab_size=TOK.vocab_size, image_size=16, widths=(8, 16), width=16, layers=1,
                                      heads=2).to(device), captioning_step, (images, ids)),
        ("text_to_image_step", CaptionToImage(vocab_size=TOK.vocab_size, image_size=16, width=16, layers=1,
                                              channels=8).to(device), text_to_image_step, (images, ids)),
        ("mae_step", MaskedAutoencoder(image_size=16, patch_size=4, width=16, depth=1, heads=2, decoder_width=16,
                                       decoder_depth=1, decoder_heads=2).to(device), mae_step, (images,)),
    ]


def helpers(device):
    """(name, call) for helpers that take CPU inputs and a model on `device`."""
    model = dual().to(device)
    mlm = MaskedCaptionModel(vocab_size=TOK.vocab_size, width=16, layers=1, heads=2).to(device)
    binding = WORLD.binding_pairs(8)
    mlm_image = MaskedCaptionModel(vocab_size=TOK.vocab_size, width=16, layers=1, heads=2, image_channels=16,
                                   image_tokens=16,
                                   image_encoder=SmallCNN(image_size=16, widths=(8, 16)).features).to(device)
    mae = MaskedAutoencoder(image_size=16, patch_size=4, width=16, depth=1, heads=2, decoder_width=16, decoder_depth=1,
                            decoder_heads=2).to(device)
    painter = CaptionToImage(vocab_size=TOK.vocab_size, image_size=16, width=16, layers=1, channels=8).to(device)
    student = classifier().to(device)
    teacher = ema_teacher(student, decay=mean_teacher_decay(2))
    return [
        ("train", lambda: train(model, torch.optim.AdamW(param_groups(model, 0.1)), clip_step,
                                lambda step: (PAIRS.images, TOK(PAIRS.captions)), steps=1, progress=False)),
        ("train from StepLoader", lambda: train(model, torch.optim.AdamW(param_groups(model, 0.1)),
                                                lambda m, b: clip_step(m, b[:2]), StepLoader(
                                                    TrainPairs(SAMPLES, plain_transform(16)), 8, collate=Collate(TOK)),
                                                steps=1, progress=False)),
        ("eval_retrieval.retrieval_scores", lambda: retrieval_scores(model, TOK, SAMPLES, plain_transform(16))),
        ("clamp_logit_scales_", lambda: clamp_logit_scales_(model)),
        ("ema_teacher, scheduled", lambda: [teacher.update_parameters(student) for _ in range(3)]),
        ("image_text_similarity", lambda: image_text_similarity(model, TOK, PAIRS.images, PAIRS.captions)),
        ("retrieval_metrics", lambda: retrieval_metrics(model, TOK, PAIRS)),
        ("binding_accuracy", lambda: binding_accuracy(model, TOK, binding, swap="size")),
        ("zero_shot_accuracy", lambda: zero_shot_accuracy(model, TOK, WORLD.labeled(8), object_prompts()[:2])),
        ("pair_similarity", lambda: pair_similarity(model, TOK, PAIRS.images, PAIRS.captions)),
        ("predict_probs", lambda: predict_probs(classifier().to(device), PAIRS.images)),
        ("self_training_round", lambda: self_training_round(classifier().to(device), PAIRS.images, torch.arange(8) % 5,
                                                            WORLD.images(8).images, 0.0)),
        ("vqa_accuracy", lambda: vqa_accuracy(VQAModel.from_dual_encoder(dual(), num_answers=len(ANSWERS)).to(device),
                                              VQA.images, TOK(VQA.questions), VQA.labels,
                                              answer_candidates(VQA.questions))),
        ("predict_each_word", lambda: predict_each_word(mlm, TOK(PAIRS.captions))),
        ("masked_word_predictions", lambda: masked_word_predictions({"text": (mlm, False), "image": (mlm_image, True)},
                                                                     TOK, PAIRS.images[0], PAIRS.captions[0], 1)),
        ("mask_ratio_explorer", lambda: mask_ratio_explorer(mae, PAIRS.images[:2])),
        ("caption_painter", lambda: caption_painter(painter, TOK, PAIRS.captions[:2])),
        ("label_efficiency.run_digits", lambda: run_digits("fixmatch", 1, steps_scale=0.004, device=device)),
        ("shapes_strong_augment", lambda: shapes_strong_augment(PAIRS.images.to(device))),
        *[(f"label_efficiency.run_shapes {m}", functools.partial(run_shapes, m, 1, pretrained=load_pretrained(device),
                                                                 steps_scale=0.02))
          for m in ("fixmatch_clip", "ft_mae", "probe_clip", "zeroshot")],
        ("Captioner.generate", lambda: Captioner(vocab_size=TOK.vocab_size, image_size=16, widths=(8, 16), width=16,
                                                 layers=1, heads=2).to(device).generate(PAIRS.images)),
    ]


def _no_mismatch(name: str, call) -> None:
    try:
        call()
    except Exception as error:  # reading meta data fails by design; a device mismatch is the bug
        if any(m in str(error) for m in MISMATCH):
            raise AssertionError(f"{name}: {error}") from error


@pytest.mark.parametrize("device", DEVICES)
def test_step_functions_keep_their_tensors_on_the_models_device(device):
    for name, model, step_fn, batch in steps(device):
        _no_mismatch(name, lambda: step_fn(model, batch))


@pytest.mark.parametrize("device", DEVICES)
def test_helpers_move_inputs_to_the_models_device(device):
    for name, call in helpers(device):
        _no_mismatch(name, call)


def test_the_audit_catches_a_cpu_tensor_meeting_the_model():
    model = classifier().to("meta")
    with pytest.raises(AssertionError, match="forgot"):
        _no_mismatch("forgot", lambda: model(PAIRS.images))  # images left on the CPU
    _no_mismatch("fine", lambda: model(PAIRS.images.to("meta")).sum().item())  # only reading meta data fails
