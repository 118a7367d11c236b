-- The per-batch stock functions keep one generic plan per statement instead of planning
-- each statement again on every call. PL/pgSQL's default (plan_cache_mode = auto) compared
-- the generic plan's estimate with the custom plans' and kept re-planning: on a slow VM,
-- applying two levels and reading their snapshot took 2.2-2.8 ms a call, 0.9-1.6 ms with
-- the plans kept (bench/findings.md), and that call is in the hub's one serial stage. The
-- plans stay index lookups: the functions that read the ledger already plan without
-- sequential scans, hash or merge joins (migration 010). As there, a later CREATE OR
-- REPLACE of these functions drops this setting: it must set it again.
ALTER FUNCTION hub_lock_keys(text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION stock_lock(text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION stock_apply_levels(jsonb, timestamptz) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION stock_snapshot(text[], boolean) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION stock_apply_levels_snapshot(jsonb, timestamptz, boolean)
    SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION stock_reserve_prepare(text[], text[]) SET plan_cache_mode = force_generic_plan;
