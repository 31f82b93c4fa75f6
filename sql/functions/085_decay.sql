-- Time decay, Elasticsearch-style, applied after fusion.
--
-- decay_factor(function, distance, scale, offset, decay): with d = max(0, |distance| - offset),
--   exp     decay ^ (d / scale)
--   gauss   decay ^ ((d / scale) ^ 2)                 (exp(-d^2 / (2 sigma^2)) with the factor decay at scale)
--   linear  max(0, 1 - (1 - decay) * d / scale)
-- so every function is 1 up to the offset and exactly `decay` at offset + scale.
--
-- The decay argument of hybrid_search is a JSON object:
--   {"function": "exp" | "gauss" | "linear"   (default "exp"),
--    "scale": "30 days"                         (required; an interval),
--    "offset": "0"                              (interval, default 0),
--    "decay": 0.5                               (the factor at offset + scale, 0 < decay < 1),
--    "field": "created_at"                      (or a metadata key holding an ISO timestamp or epoch seconds),
--    "origin": "2024-06-01T00:00:00Z"           (default now()),
--    "weight": 1.0}                             (0..1: final = score * (1 - weight + weight * factor))
-- A document without a usable timestamp gets the factor 1 (as in Elasticsearch).

CREATE OR REPLACE FUNCTION pgretrieval.decay_factor(
    func     text,
    distance double precision,
    scale    double precision,
    shift    double precision DEFAULT 0,
    decay    double precision DEFAULT 0.5
)
RETURNS double precision
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
    SELECT CASE func
        WHEN 'exp' THEN power(decay, d / scale)
        WHEN 'gauss' THEN power(decay, (d / scale) * (d / scale))
        WHEN 'linear' THEN greatest(0.0, 1.0 - (1.0 - decay) * d / scale)
    END
      FROM (SELECT greatest(0.0, abs(distance) - coalesce(shift, 0.0)) AS d) x
$$;

-- Validate a decay configuration and return it with defaults filled and intervals in seconds.
CREATE OR REPLACE FUNCTION pgretrieval._decay_config(
    p_config jsonb,
    OUT func text, OUT scale_s double precision, OUT offset_s double precision, OUT decay double precision,
    OUT field text, OUT origin timestamptz, OUT weight double precision
)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    c_hint constant text := 'decay is a JSON object like {"function": "exp", "scale": "30 days", "offset": "1 day", '
        '"decay": 0.5, "field": "created_at", "weight": 1.0}; functions: exp, gauss, linear.';
    v_key text;
BEGIN
    IF p_config IS NULL OR jsonb_typeof(p_config) <> 'object' THEN
        RAISE EXCEPTION 'malformed decay: expected a JSON object' USING ERRCODE = 'PR002', HINT = c_hint;
    END IF;
    FOR v_key IN SELECT jsonb_object_keys(p_config) LOOP
        IF v_key NOT IN ('function', 'scale', 'offset', 'decay', 'field', 'origin', 'weight') THEN
            RAISE EXCEPTION 'unknown decay option "%"', v_key USING ERRCODE = 'PR002', HINT = c_hint;
        END IF;
    END LOOP;
    BEGIN
        func := coalesce(p_config ->> 'function', 'exp');
        scale_s := extract(epoch FROM (p_config ->> 'scale')::interval);
        offset_s := coalesce(extract(epoch FROM (p_config ->> 'offset')::interval), 0);
        decay := coalesce((p_config ->> 'decay')::double precision, 0.5);
        field := coalesce(p_config ->> 'field', 'created_at');
        origin := coalesce((p_config ->> 'origin')::timestamptz, now());
        weight := coalesce((p_config ->> 'weight')::double precision, 1.0);
    EXCEPTION WHEN data_exception OR invalid_text_representation OR datetime_field_overflow THEN
        RAISE EXCEPTION 'malformed decay value: %', SQLERRM USING ERRCODE = 'PR002', HINT = c_hint;
    END;
    IF func NOT IN ('exp', 'gauss', 'linear') THEN
        RAISE EXCEPTION 'unknown decay function "%"', func USING ERRCODE = 'PR002', HINT = c_hint;
    END IF;
    IF scale_s IS NULL OR scale_s <= 0 THEN
        RAISE EXCEPTION 'decay needs a positive scale' USING ERRCODE = 'PR002', HINT = c_hint;
    END IF;
    IF offset_s < 0 OR NOT (decay > 0 AND decay < 1) OR NOT (weight >= 0 AND weight <= 1) THEN
        RAISE EXCEPTION 'invalid decay parameters (offset % s, decay %, weight %)', offset_s, decay, weight
            USING ERRCODE = 'PR002', HINT = 'offset >= 0, 0 < decay < 1, 0 <= weight <= 1.';
    END IF;
END
$$;

-- A metadata value as a timestamp (ISO text or epoch seconds), NULL when it is neither.
CREATE OR REPLACE FUNCTION pgretrieval._jsonb_timestamptz(p_value jsonb)
RETURNS timestamptz
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
BEGIN
    IF p_value IS NULL THEN
        RETURN NULL;
    ELSIF jsonb_typeof(p_value) = 'number' THEN
        RETURN to_timestamp((p_value #>> '{}')::double precision);
    ELSIF jsonb_typeof(p_value) = 'string' THEN
        RETURN (p_value #>> '{}')::timestamptz;
    END IF;
    RETURN NULL;
EXCEPTION WHEN data_exception OR invalid_text_representation OR datetime_field_overflow THEN
    RETURN NULL;
END
$$;

-- The recency factor of one document under a decay configuration (validated by _decay_config).
CREATE OR REPLACE FUNCTION pgretrieval.time_decay(created_at timestamptz, metadata jsonb, decay jsonb)
RETURNS double precision
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    c record;
    v_ts timestamptz;
BEGIN
    SELECT * INTO c FROM pgretrieval._decay_config(decay);
    v_ts := CASE WHEN c.field = 'created_at' THEN time_decay.created_at
                 ELSE pgretrieval._jsonb_timestamptz(time_decay.metadata -> c.field) END;
    IF v_ts IS NULL THEN
        RETURN 1.0;
    END IF;
    RETURN pgretrieval.decay_factor(c.func, extract(epoch FROM (v_ts - c.origin))::double precision,
                                    c.scale_s, c.offset_s, c.decay);
END
$$;
