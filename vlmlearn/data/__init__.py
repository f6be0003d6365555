"""Data for the course: ShapesWorld, the real digits, real dataset formats, tokenizers and labeled subsets."""
from .captions import (
                      ANSWERS,
                      ANSWERS_BY_TYPE,
                      ATTRIBUTES,
                      COLORS,
                      POSITIONS,
                      QUESTION_TYPES,
                      SHAPES,
                      SIZES,
                      caption_from_attributes,
                      caption_matches,
                      caption_vocabulary,
                      content_keys,
                      drop_function_words,
                      hard_negative_captions,
                      label_noise,
                      names_heldout,
                      paraphrases,
                      parse_caption,
                      size_swapped_captions,
                      text_names_heldout,
                      vqa_statement,
)
from .digits import DIGIT_NAMES, DigitsSplit, LabeledImages, digit_caption, load_digits_split
from .formats import (
                      ImageCaptionDataset,
                      export_coco_captions,
                      export_csv_pairs,
                      export_flickr30k,
                      load_coco_captions,
                      load_csv_pairs,
                      load_flickr30k,
                      load_image,
                      load_image_folder,
                      to_rgb,
)
from .loader import DATASET_TYPES, SAMPLES_DIR, Collate, StepLoader, TrainPairs, read_pairs, read_rgb
from .shapes import NOISE_KINDS, Batch, ShapesWorld
from .subsets import first_per_class
from .tokenize import OpenClipTokenizer, Tokenizer, WordTokenizer, trim_padding
