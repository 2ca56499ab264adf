-- 0017: calibration of the multiple-choice answers. Each capability item keeps every choice's
-- summed log-likelihood (a JSON list of doubles, in the item's choice order) and the gold
-- choice's index, so the views can turn them into the model's probabilities over the choices.
-- Rows scored before this migration have neither (null) and are left out of calibration.
alter table capability_items add column choice_logliks json;
alter table capability_items add column gold integer;
