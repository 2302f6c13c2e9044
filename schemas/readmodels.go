package schemas

import (
	"fmt"
	"io/fs"
	"strconv"
	"strings"
)

// GenerationDDL holds one dialect's DDL templates for the tables of a
// projection's generation (see ReadModels), with {gen} substituted on use.
type GenerationDDL struct {
	templates map[string]string // "<projection>.up" and ".down"
}

// LoadGenerationDDL reads the up and down templates of each named
// projection for dialect.
func LoadGenerationDDL(dialect string, projections ...string) (*GenerationDDL, error) {
	fsys := ReadModels(dialect)
	t := map[string]string{}
	for _, name := range projections {
		for _, dir := range []string{"up", "down"} {
			b, err := fs.ReadFile(fsys, name+"."+dir+".sql")
			if err != nil {
				return nil, fmt.Errorf("%s read-model table templates: %w", dialect, err)
			}
			t[name+"."+dir] = string(b)
		}
	}
	return &GenerationDDL{templates: t}, nil
}

func (d *GenerationDDL) render(name, dir string, gen int64) string {
	return strings.ReplaceAll(d.templates[name+"."+dir], "{gen}", strconv.FormatInt(gen, 10))
}

// Up splits the DDL that makes a generation into its tables (with the keys
// writes need) and its secondary indexes, one statement each. Stores create
// the tables with the generation and the indexes when it is activated: a
// rebuild that fills bare tables and sorts each index once at the end is
// several times faster than one that keeps every index up to date row by
// row. Index statements come back as CREATE INDEX IF NOT EXISTS, so that
// building them again after an interruption is harmless.
func (d *GenerationDDL) Up(name string, gen int64) (tables string, indexes []string) {
	var t strings.Builder
	for _, line := range strings.SplitAfter(d.render(name, "up", gen), "\n") {
		if rest, ok := strings.CutPrefix(line, "CREATE INDEX "); ok {
			indexes = append(indexes, "CREATE INDEX IF NOT EXISTS "+strings.TrimSpace(rest))
			continue
		}
		t.WriteString(line)
	}
	return t.String(), indexes
}

// Down is the DDL that drops a generation's tables.
func (d *GenerationDDL) Down(name string, gen int64) string { return d.render(name, "down", gen) }
