-- Each prompt category of the evaluation with the domain (slice) its prompts are compared
-- in, e.g. science_qa in in_domain: the failure-mode heat map names a category by both.
select distinct
    coalesce(category, '') as category,
    coalesce(domain, '') as domain
from prompts
where evaluation_id = $evaluation_id
order by domain, category
