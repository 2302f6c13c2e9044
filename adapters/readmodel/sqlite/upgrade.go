package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kycengine/kyc/projections"
)

// upgrade brings the generations in the file to the layout of this
// release's templates, so that a file written by an older release serves
// reads at once instead of after a rebuild: it adds the tables and columns
// the customers templates gained, filled from what the generation already
// holds, and makes the indexes of each active generation those of the
// templates, dropping the ones they no longer have. On a file that is up to
// date it only reads the schema. It runs in Open, which it can keep busy for
// a while on a large file: about as long as the activation of a rebuild.
func (s *Store) upgrade(ctx context.Context) error {
	rows, err := s.wdb.QueryContext(ctx, `SELECT g.name, g.gen, coalesce(p.active = g.gen, 0) FROM generations AS g
		LEFT JOIN projections AS p ON p.name = g.name ORDER BY g.name, g.gen`)
	if err != nil {
		return fmt.Errorf("sqlite read model: upgrade: %w", err)
	}
	type generation struct {
		name   string
		gen    projections.Generation
		active bool
	}
	var gens []generation
	for rows.Next() {
		var g generation
		if err := rows.Scan(&g.name, &g.gen, &g.active); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite read model: upgrade: %w", err)
		}
		gens = append(gens, g)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("sqlite read model: upgrade: %w", err)
	}
	for _, g := range gens {
		if !slices.Contains(projectionNames, g.name) {
			continue
		}
		err := s.inTx(ctx, func(tx *sql.Tx) error {
			if g.name == projections.CustomersProjection {
				if err := s.upgradeCustomers(ctx, tx, g.gen); err != nil {
					return err
				}
			}
			if !g.active {
				return nil
			}
			return s.syncIndexes(ctx, tx, g.name, g.gen)
		})
		if err != nil {
			return fmt.Errorf("sqlite read model: upgrade %s generation %d: %w", g.name, g.gen, err)
		}
	}
	return nil
}

// setColumn is a column of customers_gN that holds the values of a terms
// field as a set (valueSet).
type setColumn struct{ column, field string }

// setColumns are the set columns: those of the counted fields, then search.
func setColumns() []setColumn {
	var out []setColumn
	for _, f := range termFields {
		if f.column != "" {
			out = append(out, setColumn{f.column, f.name})
		}
	}
	return append(out, setColumn{"search", termFields[fieldQ].name})
}

// upgradeCustomers adds the set columns, the prev column of the terms and
// the values table to a customers generation that lacks them, and fills
// them.
func (s *Store) upgradeCustomers(ctx context.Context, tx *sql.Tx, gen projections.Generation) error {
	c, t, values := customersTable(gen), termsTable(gen), valuesTable(gen)
	hadValues, err := tableExists(ctx, tx, values)
	if err != nil {
		return err
	}
	tables, _ := s.templates.Up(projections.CustomersProjection, int64(gen))
	if _, err := tx.ExecContext(ctx, tables); err != nil {
		return err
	}
	has, err := tableColumns(ctx, tx, c)
	if err != nil {
		return err
	}
	var missing []setColumn
	for _, sc := range setColumns() {
		if !has[sc.column] {
			missing = append(missing, sc)
		}
	}
	if len(missing) > 0 {
		// The escaping of valueSet, in SQL: 0x1e doubled, then 0x1f as
		// 0x1e 0x1d. The order of the values in a set does not matter.
		esc := "replace(replace(value, char(30), char(30) || char(30)), char(31), char(30) || char(29))"
		var sets, fields, names []string
		for _, sc := range missing {
			if _, err := tx.ExecContext(ctx, "ALTER TABLE "+c+" ADD COLUMN "+sc.column+" TEXT NOT NULL DEFAULT ''"); err != nil {
				return err
			}
			sets = append(sets, sc.column+" = coalesce(x."+sc.column+", '')")
			fields = append(fields, "char(31) || group_concat(CASE WHEN field = '"+sc.field+"' THEN "+esc+" END, char(31) ORDER BY value) || char(31) AS "+sc.column)
			names = append(names, "'"+sc.field+"'")
		}
		_, err := tx.ExecContext(ctx, "UPDATE "+c+" AS c SET "+strings.Join(sets, ", ")+
			" FROM (SELECT seq, "+strings.Join(fields, ", ")+" FROM "+t+" WHERE field IN ("+strings.Join(names, ", ")+") GROUP BY seq) AS x"+
			" WHERE x.seq = c.seq")
		if err != nil {
			return err
		}
	}
	if !has["expiries"] {
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+c+" ADD COLUMN expiries TEXT NOT NULL DEFAULT ''"); err != nil {
			return err
		}
		// expiriesOf in SQL: a date of dateLen characters that are as many
		// bytes is ASCII.
		n := strconv.Itoa(dateLen)
		_, err := tx.ExecContext(ctx, "UPDATE "+c+" AS c SET expiries = x.e FROM (SELECT seq, CASE WHEN count(*) <= "+strconv.Itoa(expirySlots)+
			" AND min(length(value)) = "+n+" AND max(length(value)) = "+n+" AND max(length(CAST(value AS BLOB))) = "+n+
			" THEN group_concat(value, '' ORDER BY value) ELSE '*' END AS e FROM "+t+" WHERE field = 'expiry' GROUP BY seq) AS x WHERE x.seq = c.seq")
		if err != nil {
			return err
		}
	}
	termCols, err := tableColumns(ctx, tx, t)
	if err != nil {
		return err
	}
	if !termCols["prev"] {
		if _, err := tx.ExecContext(ctx, "ALTER TABLE "+t+" ADD COLUMN prev TEXT"); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, "UPDATE "+t+" AS t SET prev = x.prev FROM (SELECT field, value, seq,"+
			" lag(value) OVER (PARTITION BY field, seq ORDER BY value) AS prev FROM "+t+" WHERE field IN ('q', 'expiry')) AS x"+
			" WHERE x.prev IS NOT NULL AND t.field = x.field AND t.value = x.value AND t.seq = x.seq")
		if err != nil {
			return err
		}
	}
	if !termCols["created_at"] {
		// The rows gained the customer's created_at and company_id, the
		// first as part of their key: the table is made anew from the
		// template and filled from the old one.
		old := t + "_old"
		for _, stmt := range []string{
			"ALTER TABLE " + t + " RENAME TO " + old,
			tables,
			"INSERT INTO " + t + " (field, value, created_at, seq, company_id, prev) SELECT o.field, o.value, c.created_at, o.seq, c.company_id, o.prev FROM " +
				old + " AS o JOIN " + c + " AS c ON c.seq = o.seq",
			"DROP TABLE " + old,
		} {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return err
			}
		}
	}
	if hadValues {
		return nil
	}
	var parts []string
	for i := 1; i <= colLastValue; i++ {
		col := customerColumns[i]
		parts = append(parts, "SELECT '"+col+"', CAST("+col+" AS TEXT), company_id, count(*) FROM "+c+" GROUP BY 2, 3")
	}
	var names []string
	for _, f := range termFields {
		if f.column != "" {
			names = append(names, "'"+f.name+"'")
		}
	}
	parts = append(parts, "SELECT t.field, t.value, c.company_id, count(*) FROM "+t+" AS t JOIN "+c+
		" AS c ON c.seq = t.seq WHERE t.field IN ("+strings.Join(names, ", ")+") GROUP BY 1, 2, 3")
	_, err = tx.ExecContext(ctx, "INSERT INTO "+values+" (field, value, company_id, n) "+strings.Join(parts, " UNION ALL "))
	return err
}

// syncIndexes makes the secondary indexes of an active generation those of
// its template: it drops the others, and those whose definition the
// template changed, and builds the missing ones.
func (s *Store) syncIndexes(ctx context.Context, tx *sql.Tx, name string, gen projections.Generation) error {
	_, want := s.templates.Up(name, int64(gen))
	wanted := map[string]string{}
	for _, ix := range want {
		wanted[indexName(ix)] = indexDefinition(ix)
	}
	tables := s.generationTables(name, gen)
	rows, err := tx.QueryContext(ctx, "SELECT name, sql FROM sqlite_schema WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN ("+
		marks(len(tables))+")", anys(tables)...)
	if err != nil {
		return err
	}
	var drop []string
	have := map[string]bool{}
	for rows.Next() {
		var ix, def string
		if err := rows.Scan(&ix, &def); err != nil {
			rows.Close()
			return err
		}
		if w, ok := wanted[ix]; ok && w == indexDefinition(def) {
			have[ix] = true
		} else {
			drop = append(drop, ix)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	changed := len(drop) > 0
	for _, ix := range drop {
		if _, err := tx.ExecContext(ctx, "DROP INDEX "+ix); err != nil {
			return err
		}
	}
	for _, ix := range want {
		index := indexName(ix)
		if have[index] {
			continue
		}
		changed = true
		// A large file takes minutes over these; say what the wait is.
		began := time.Now()
		s.log.Info("read models: building an index this release adds or changes", "index", index)
		if _, err := tx.ExecContext(ctx, ix); err != nil {
			return err
		}
		s.log.Info("read models: index built", "index", index, "took", time.Since(began).Round(time.Millisecond))
	}
	if !changed {
		return nil
	}
	return s.analyze(ctx, tx, name, gen)
}

// indexName is the name a template's "CREATE INDEX IF NOT EXISTS <name> ON
// ..." gives its index.
func indexName(ix string) string { return strings.Fields(ix)[5] }

// indexDefinition is a CREATE INDEX statement as SQLite keeps it in
// sqlite_schema (without IF NOT EXISTS nor the semicolon), with its spaces
// collapsed, so that a template and a stored index compare equal when they
// define the same index.
func indexDefinition(ix string) string {
	ix = strings.TrimSuffix(strings.TrimSpace(ix), ";")
	return strings.Join(strings.Fields(strings.Replace(ix, " IF NOT EXISTS ", " ", 1)), " ")
}

// generationTables names the tables of a generation, as its "down" template
// drops them.
func (s *Store) generationTables(name string, gen projections.Generation) []string {
	var out []string
	for _, line := range strings.Split(s.templates.Down(name, int64(gen)), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "DROP TABLE IF EXISTS "); ok {
			out = append(out, strings.TrimSuffix(rest, ";"))
		}
	}
	return out
}

func tableColumns(ctx context.Context, tx *sql.Tx, table string) (map[string]bool, error) {
	rows, err := tx.QueryContext(ctx, "SELECT name FROM pragma_table_info(?)", table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols := map[string]bool{}
	for rows.Next() {
		var col string
		if err := rows.Scan(&col); err != nil {
			return nil, err
		}
		cols[col] = true
	}
	return cols, rows.Err()
}

func tableExists(ctx context.Context, tx *sql.Tx, table string) (bool, error) {
	var n int
	err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = ?", table).Scan(&n)
	return n > 0, err
}
