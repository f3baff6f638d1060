"""Independent numpy references for wkvq's Python tests.

Written from the model descriptions (llama2.c file layout, Hugging Face Llama semantics), not
from any public implementation. Modules:
  readers     llama2.c .bin / tok512.bin, safetensors (read + write), HF config and directories
  model       Config/Weights containers and the float64 forward (both RoPE layouts, GQA)
  bpe         llama2.c-style BPE encoder/decoder (byte-exact with llama2.c's encode())
  spm         minimal SentencePiece tokenizer.model reader (pieces + scores) for test inputs
  generate    greedy generation with llama2.c semantics
"""
