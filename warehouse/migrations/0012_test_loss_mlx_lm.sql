-- 0012: test_losses' tokens and nll are what `mlx_lm lora --test` sums per example: the run's
-- train.mask_prompt, rows cut at data.max_seq_length, and the one target past the end of each
-- row that fits, which mlx-lm's default_loss counts. The reference answer's own NLL, what
-- tokens and nll held before (the assistant's answer whatever mask_prompt, whole row, nothing
-- past its end), moves to answer_tokens and answer_nll. Earlier rows keep their numbers there;
-- their tokens and nll become null, and evaluating the run again fills them in.

alter table test_losses add column answer_tokens integer;
alter table test_losses add column answer_nll double;
update test_losses set answer_tokens = tokens, answer_nll = nll, tokens = null, nll = null;
