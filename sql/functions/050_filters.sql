-- The metadata filter language, compiled into a safe SQL predicate on documents (alias d).
--
-- A filter is a JSON object; its keys are ANDed:
--   {"category": "faq"}                      containment: d.metadata @> {"category": "faq"} (GIN-indexed)
--   {"tags": ["a", "b"]}                     containment of arrays (tags holds a and b)
--   {"year": {"gte": 2020, "lt": 2024}}      comparisons: eq ne gt gte lt lte in nin exists contains
--   {"and": [f, ...]} {"or": [f, ...]} {"not": f}
-- gt/gte/lt/lte compare numbers numerically and strings byte-wise (ISO dates and timestamps in one format
-- compare correctly); a field of another JSON type never matches. ne and nin also match documents that lack
-- the field. in matches a field equal to one of the values or an array field holding one of them.
-- An object value must consist of operators only: an unknown operator is an error, never a silent no-op.
--
-- Safety: no part of the filter is ever written into SQL text. The compiler emits fixed fragments that
-- reference the filter's keys and values through one jsonb parameter ($N->i), so field names and values
-- travel as data. The only things spliced into the SQL are our own integers.

CREATE OR REPLACE FUNCTION pgretrieval._filter_node(
    p_node jsonb,
    p_param integer,
    INOUT args jsonb,
    p_depth integer,
    OUT predicate text
)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_key text;
    v_val jsonb;
    v_op text;
    v_arg jsonb;
    v_parts text[] := '{}';
    v_sub text[];
    v_child record;
    v_field text;   -- SQL for the field's jsonb value
    v_ref text;     -- SQL for the operator's argument
    v_ki integer;
    v_elem jsonb;
    v_n integer;
    c_ops constant text[] := ARRAY['eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'nin', 'exists', 'contains'];
    c_hint constant text := 'A filter is a JSON object such as {"category": "faq", "year": {"gte": 2020}}; '
        'operators: eq, ne, gt, gte, lt, lte, in, nin, exists, contains, combined with and/or/not.';
BEGIN
    IF p_depth > 32 THEN
        RAISE EXCEPTION 'metadata filter is nested too deeply (more than 32 levels)'
            USING ERRCODE = 'PR002', HINT = c_hint;
    END IF;
    IF p_node IS NULL OR jsonb_typeof(p_node) <> 'object' THEN
        RAISE EXCEPTION 'malformed metadata filter: expected a JSON object, got %',
            coalesce(left(p_node::text, 200), 'NULL')
            USING ERRCODE = 'PR002', HINT = c_hint;
    END IF;
    IF jsonb_array_length(args) > 10000 THEN
        RAISE EXCEPTION 'metadata filter is too large' USING ERRCODE = 'PR002', HINT = c_hint;
    END IF;

    FOR v_key, v_val IN SELECT e.key, e.value FROM jsonb_each(p_node) e LOOP
        IF v_key IN ('and', 'or') THEN
            IF jsonb_typeof(v_val) <> 'array' THEN
                RAISE EXCEPTION 'malformed metadata filter: "%" takes a JSON array of filters', v_key
                    USING ERRCODE = 'PR002', HINT = c_hint;
            END IF;
            v_sub := '{}';
            FOR v_elem IN SELECT x FROM jsonb_array_elements(v_val) x LOOP
                SELECT * INTO v_child FROM pgretrieval._filter_node(v_elem, p_param, args, p_depth + 1);
                args := v_child.args;
                v_sub := v_sub || v_child.predicate;
            END LOOP;
            IF cardinality(v_sub) = 0 THEN
                v_parts := v_parts || CASE v_key WHEN 'and' THEN 'true' ELSE 'false' END;
            ELSE
                v_parts := v_parts || ('(' || array_to_string(v_sub, CASE v_key WHEN 'and' THEN ' AND ' ELSE ' OR ' END) || ')');
            END IF;
            CONTINUE;
        ELSIF v_key = 'not' THEN
            SELECT * INTO v_child FROM pgretrieval._filter_node(v_val, p_param, args, p_depth + 1);
            args := v_child.args;
            v_parts := v_parts || ('(NOT ' || v_child.predicate || ')');
            CONTINUE;
        END IF;

        -- A field. Scalars and arrays mean containment; an object is a set of operators.
        IF jsonb_typeof(v_val) <> 'object' THEN
            args := args || jsonb_build_array(jsonb_build_object(v_key, v_val));
            v_parts := v_parts || format('(d.metadata @> ($%s->%s))', p_param, jsonb_array_length(args) - 1);
            CONTINUE;
        END IF;
        IF v_val = '{}'::jsonb THEN
            RAISE EXCEPTION 'malformed metadata filter: field "%" has an empty operator object', v_key
                USING ERRCODE = 'PR002', HINT = c_hint;
        END IF;

        args := args || jsonb_build_array(to_jsonb(v_key));
        v_ki := jsonb_array_length(args) - 1;
        v_field := format('(d.metadata -> ($%s->>%s))', p_param, v_ki);

        FOR v_op, v_arg IN SELECT e.key, e.value FROM jsonb_each(v_val) e LOOP
            IF NOT (v_op = ANY (c_ops)) THEN
                RAISE EXCEPTION 'unknown metadata filter operator "%" on field "%"', v_op, v_key
                    USING ERRCODE = 'PR002', HINT = c_hint;
            END IF;
            IF v_op IN ('eq', 'ne', 'contains') THEN
                IF v_op = 'contains' OR jsonb_typeof(v_arg) IN ('string', 'number', 'boolean') THEN
                    -- containment of {field: value}: equality for scalars, and it can use the GIN index
                    args := args || jsonb_build_array(jsonb_build_object(v_key, v_arg));
                    v_ref := format('(d.metadata @> ($%s->%s))', p_param, jsonb_array_length(args) - 1);
                ELSE
                    args := args || jsonb_build_array(v_arg);
                    v_ref := format('coalesce(%s = ($%s->%s), false)', v_field, p_param, jsonb_array_length(args) - 1);
                END IF;
                v_parts := v_parts || CASE WHEN v_op = 'ne' THEN '(NOT ' || v_ref || ')' ELSE v_ref END;
            ELSIF v_op IN ('gt', 'gte', 'lt', 'lte') THEN
                args := args || jsonb_build_array(v_arg);
                v_n := jsonb_array_length(args) - 1;
                IF jsonb_typeof(v_arg) = 'number' THEN
                    v_parts := v_parts || format('(jsonb_typeof(%s) = ''number'' AND %s %s ($%s->%s))',
                        v_field, v_field,
                        CASE v_op WHEN 'gt' THEN '>' WHEN 'gte' THEN '>=' WHEN 'lt' THEN '<' ELSE '<=' END,
                        p_param, v_n);
                ELSIF jsonb_typeof(v_arg) = 'string' THEN
                    v_parts := v_parts || format(
                        '(jsonb_typeof(%s) = ''string'' AND (d.metadata ->> ($%s->>%s)) COLLATE "C" %s ($%s->>%s) COLLATE "C")',
                        v_field, p_param, v_ki,
                        CASE v_op WHEN 'gt' THEN '>' WHEN 'gte' THEN '>=' WHEN 'lt' THEN '<' ELSE '<=' END,
                        p_param, v_n);
                ELSE
                    RAISE EXCEPTION 'metadata filter operator "%" on field "%" needs a number or a string, got %',
                        v_op, v_key, left(v_arg::text, 200)
                        USING ERRCODE = 'PR002', HINT = c_hint;
                END IF;
            ELSIF v_op IN ('in', 'nin') THEN
                IF jsonb_typeof(v_arg) <> 'array' THEN
                    RAISE EXCEPTION 'metadata filter operator "%" on field "%" needs a JSON array, got %',
                        v_op, v_key, left(v_arg::text, 200)
                        USING ERRCODE = 'PR002', HINT = c_hint;
                END IF;
                v_sub := '{}';
                IF jsonb_array_length(v_arg) <= 100 THEN
                    -- one containment test per value (a bitmap OR over the GIN index)
                    FOR v_elem IN SELECT x FROM jsonb_array_elements(v_arg) x LOOP
                        args := args || jsonb_build_array(jsonb_build_object(v_key, v_elem));
                        v_sub := v_sub || format('d.metadata @> ($%s->%s)', p_param, jsonb_array_length(args) - 1);
                        IF jsonb_typeof(v_elem) IN ('string', 'number', 'boolean') THEN
                            args := args || jsonb_build_array(jsonb_build_object(v_key, jsonb_build_array(v_elem)));
                            v_sub := v_sub || format('d.metadata @> ($%s->%s)', p_param, jsonb_array_length(args) - 1);
                        END IF;
                    END LOOP;
                    v_ref := CASE WHEN cardinality(v_sub) = 0 THEN 'false'
                                  ELSE '(' || array_to_string(v_sub, ' OR ') || ')' END;
                ELSE
                    args := args || jsonb_build_array(v_arg);
                    v_ref := format('EXISTS (SELECT 1 FROM jsonb_array_elements($%s->%s) x(v) '
                                    'WHERE %s = x.v OR (jsonb_typeof(%s) = ''array'' AND %s @> jsonb_build_array(x.v)))',
                                    p_param, jsonb_array_length(args) - 1, v_field, v_field, v_field);
                END IF;
                v_parts := v_parts || CASE WHEN v_op = 'nin' THEN '(NOT ' || v_ref || ')' ELSE v_ref END;
            ELSE  -- exists
                IF jsonb_typeof(v_arg) <> 'boolean' THEN
                    RAISE EXCEPTION 'metadata filter operator "exists" on field "%" needs true or false, got %',
                        v_key, left(v_arg::text, 200)
                        USING ERRCODE = 'PR002', HINT = c_hint;
                END IF;
                v_parts := v_parts || format('(%s(d.metadata ? ($%s->>%s)))',
                    CASE WHEN v_arg = 'true'::jsonb THEN '' ELSE 'NOT ' END, p_param, v_ki);
            END IF;
        END LOOP;
    END LOOP;

    predicate := CASE WHEN cardinality(v_parts) = 0 THEN 'true'
                      WHEN cardinality(v_parts) = 1 THEN v_parts[1]
                      ELSE '(' || array_to_string(v_parts, ' AND ') || ')' END;
END
$$;

-- Compile a filter for use in dynamic SQL over pgretrieval.documents aliased d: the predicate references
-- the returned args only as $<param>; pass args through EXECUTE ... USING at that position.
-- A NULL, JSON null or empty filter compiles to NULL (no predicate).
CREATE OR REPLACE FUNCTION pgretrieval.compile_filter(
    filter jsonb,
    param integer DEFAULT 1,
    OUT predicate text,
    OUT args jsonb
)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    r record;
BEGIN
    args := '[]'::jsonb;
    IF filter IS NULL OR filter = 'null'::jsonb OR filter = '{}'::jsonb THEN
        predicate := NULL;
        RETURN;
    END IF;
    IF param IS NULL OR param < 1 OR param > 100 THEN
        RAISE EXCEPTION 'invalid parameter position %', param USING ERRCODE = 'PR002', HINT = 'Use 1 to 100.';
    END IF;
    SELECT * INTO r FROM pgretrieval._filter_node(filter, param, '[]'::jsonb, 1);
    predicate := r.predicate;
    args := r.args;
END
$$;

-- Does one metadata object pass a filter? (The same compiled predicate the searches use.)
CREATE OR REPLACE FUNCTION pgretrieval.matches_filter(metadata jsonb, filter jsonb)
RETURNS boolean
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    f record;
    v_result boolean;
BEGIN
    SELECT * INTO f FROM pgretrieval.compile_filter(filter, 1);
    IF f.predicate IS NULL THEN
        RETURN true;
    END IF;
    EXECUTE format('SELECT %s FROM (SELECT $2::jsonb AS metadata) d', f.predicate)
       INTO v_result USING f.args, coalesce(metadata, '{}'::jsonb);
    RETURN v_result;
END
$$;

-- The WHERE fragment (starting with AND) for the hard filter and date range, for documents aliased d, with
-- the filter args at $<p_param>, created_after at $<p_param + 1> and created_before at $<p_param + 2>.
-- Empty when there is nothing to filter.
CREATE OR REPLACE FUNCTION pgretrieval._filter_clause(
    p_predicate text, p_param integer, p_created_after timestamptz, p_created_before timestamptz
)
RETURNS text
LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
    SELECT coalesce(' AND ' || p_predicate, '')
        || CASE WHEN p_created_after IS NULL THEN '' ELSE format(' AND d.created_at >= $%s', p_param + 1) END
        || CASE WHEN p_created_before IS NULL THEN '' ELSE format(' AND d.created_at < $%s', p_param + 2) END
$$;
