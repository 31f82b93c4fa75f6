-- Query parsing "the way users type", for BM25.
--
--   cat dog            two optional terms (BM25 ranks chunks containing either; more matches rank higher)
--   "hot dog"          a phrase: required, and its words must appear next to each other
--   -cat  -"hot dog"   exclusion: chunks containing the term (or phrase) are dropped
--   cat or dog         alternatives; matters when all terms are required (require_all_terms => true):
--                      then every group must match, and `or` joins clauses into one group
-- Anything else is text: punctuation and operators (&|!:*()\'), backslashes, emoji, very long input are
-- never interpreted as syntax. Lexemes come only from pgretrieval.query_to_tsvector(config, piece), the
-- query side of text_to_tsvector (the function documents are indexed with; the two differ only in what a CJK
-- run yields, see 020_text.sql), so queries and documents always agree whatever the configuration. A lexeme
-- that pgretrieval._is_prefix_lexeme marks (one CJK character in cjk, cjk_simple, auto) matches every lexeme
-- starting with it: X:* in the tsquery, a prefix range of postings in _lexical_ranked.

-- A tsquery matching one lexeme exactly, built from the lexeme as data (quoted per the tsquery grammar).
CREATE OR REPLACE FUNCTION pgretrieval._lexeme_tsquery(p_lexeme text)
RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
    SELECT ('''' || replace(replace(p_lexeme, '\', '\\'), '''', '''''') || '''')::tsquery
$$;

-- The tsquery of one query lexeme of a configuration: the lexeme, or every lexeme that starts with it (X:*)
-- where pgretrieval._is_prefix_lexeme says so.
CREATE OR REPLACE FUNCTION pgretrieval._query_lexeme_tsquery(p_config text, p_lexeme text)
RETURNS tsquery
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
    SELECT CASE WHEN pgretrieval._is_prefix_lexeme(p_config, p_lexeme)
                THEN ('''' || p_lexeme || ''':*')::tsquery  -- a CJK character: no quote or backslash to escape
                ELSE pgretrieval._lexeme_tsquery(p_lexeme) END
$$;

-- One row per clause of the query:
--   grp       clauses sharing a group number were joined with `or` (negated clauses have grp 0)
--   negated   the clause was written with a leading minus
--   phrase    the clause was quoted
--   lexemes   its lexemes, in text order for phrases (distinct for plain terms)
--   tsq       a tsquery matching the clause: the phrase with its word distances, or all of a term's lexemes
--             (a prefix lexeme as X:*)
-- Pieces that yield no lexeme (stop words, punctuation) are left out.
CREATE OR REPLACE FUNCTION pgretrieval.parse_query(config text, query_text text)
RETURNS TABLE (clause integer, grp integer, negated boolean, phrase boolean, lexemes text[], tsq tsquery)
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    m text[];
    v_text text;
    v_neg boolean;
    v_phrase boolean;
    v_tsv tsvector;
    v_lex text[];
    v_pos integer[];
    v_q tsquery;
    v_grp integer := 0;
    v_clause integer := 0;
    v_pending_or boolean := false;
    v_have_positive boolean := false;
    v_prefixes boolean := config IN ('cjk', 'cjk_simple', 'auto');  -- may hold prefix lexemes
    i integer;
BEGIN
    IF query_text IS NULL OR btrim(query_text) = '' THEN
        RETURN;
    END IF;
    -- a quoted phrase (optionally negated; the closing quote may be missing), or a run of non-space non-quotes
    FOR m IN SELECT regexp_matches(query_text, '(-?)["“”]([^"“”]*)["“”]?|([^[:space:]"“”]+)', 'g') LOOP
        IF m[3] IS NULL THEN
            v_phrase := true;
            v_neg := m[1] = '-';
            v_text := m[2];
        ELSE
            IF lower(m[3]) = 'or' THEN
                v_pending_or := v_have_positive;
                CONTINUE;
            END IF;
            v_phrase := false;
            v_neg := left(m[3], 1) = '-' AND length(m[3]) > 1;
            v_text := CASE WHEN v_neg THEN substr(m[3], 2) ELSE m[3] END;
        END IF;

        v_tsv := pgretrieval.query_to_tsvector(config, v_text);
        IF v_phrase THEN
            -- lexemes in text order; a configuration without positions makes the phrase an AND of its lexemes
            SELECT array_agg(u.lexeme ORDER BY p.pos, u.lexeme), array_agg(p.pos ORDER BY p.pos, u.lexeme)
              INTO v_lex, v_pos
              FROM unnest(v_tsv) u
              LEFT JOIN LATERAL unnest(u.positions) AS p(pos) ON true;
        ELSE
            SELECT array_agg(u.lexeme ORDER BY u.lexeme), NULL INTO v_lex, v_pos FROM unnest(v_tsv) u;
        END IF;
        IF v_lex IS NULL THEN
            CONTINUE;
        END IF;

        v_q := CASE WHEN v_prefixes THEN pgretrieval._query_lexeme_tsquery(config, v_lex[1])
                     ELSE pgretrieval._lexeme_tsquery(v_lex[1]) END;
        FOR i IN 2 .. cardinality(v_lex) LOOP
            IF v_phrase AND v_pos[i] IS NOT NULL AND v_pos[i - 1] IS NOT NULL THEN
                v_q := tsquery_phrase(v_q, CASE WHEN v_prefixes THEN pgretrieval._query_lexeme_tsquery(config, v_lex[i])
                                                ELSE pgretrieval._lexeme_tsquery(v_lex[i]) END,
                                      greatest(v_pos[i] - v_pos[i - 1], 0));
            ELSE
                v_q := v_q && CASE WHEN v_prefixes THEN pgretrieval._query_lexeme_tsquery(config, v_lex[i])
                                   ELSE pgretrieval._lexeme_tsquery(v_lex[i]) END;
            END IF;
        END LOOP;

        v_clause := v_clause + 1;
        IF v_neg THEN
            v_pending_or := false;
            RETURN QUERY SELECT v_clause, 0, true, v_phrase, v_lex, v_q;
            CONTINUE;
        END IF;
        IF NOT v_pending_or THEN
            v_grp := v_grp + 1;
        END IF;
        v_pending_or := false;
        v_have_positive := true;
        RETURN QUERY SELECT v_clause, v_grp, false, v_phrase, v_lex, v_q;
    END LOOP;
END
$$;

-- OR (p_and = false) or AND (p_and = true) of tsqueries; NULL for none.
CREATE OR REPLACE FUNCTION pgretrieval._tsquery_combine(p_queries tsquery[], p_and boolean)
RETURNS tsquery
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pgretrieval, public, extensions
AS $$
DECLARE
    v_result tsquery;
    v_q tsquery;
BEGIN
    FOREACH v_q IN ARRAY coalesce(p_queries, '{}') LOOP
        CONTINUE WHEN v_q IS NULL;
        v_result := CASE WHEN v_result IS NULL THEN v_q WHEN p_and THEN v_result && v_q ELSE v_result || v_q END;
    END LOOP;
    RETURN v_result;
END
$$;
