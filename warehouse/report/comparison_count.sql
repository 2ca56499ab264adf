-- How many base-vs-tuned comparisons the evaluation makes (the family p is adjusted over).
select count(*) as comparisons
from comparisons
where evaluation_id = $evaluation_id
