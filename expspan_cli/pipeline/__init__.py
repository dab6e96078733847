"""`expspan reproduce`: a recipe's prepare -> pretrain -> finetune grid -> eval -> report, resumable stage by stage."""

from expspan_cli.pipeline.plan import Stage, build_plan, parse_shard
from expspan_cli.pipeline.run import plan_table, reproduce
from expspan_cli.pipeline.spec import Reproduction, load_reproduction, parse_reproduction

__all__ = ["Reproduction", "Stage", "build_plan", "load_reproduction", "parse_reproduction", "parse_shard",
           "plan_table", "reproduce"]
