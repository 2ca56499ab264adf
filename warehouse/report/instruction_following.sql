-- Instruction following (IFEval, IFBench), prompt level first, each family's overall rows first.
select * exclude (evaluation_id, run_id)
from instruction_following
where evaluation_id = $evaluation_id
order by family desc, level desc, instruction_type = '(all)' desc, instruction_type,
    strictness desc
