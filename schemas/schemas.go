// Package schemas holds the engine's machine-readable contracts: lifecycle
// definitions, the JSON Schema of every event type and version, the OpenAPI
// document and the SQL migrations. They are embedded so the single binary
// carries the exact contracts it was built against.
package schemas

import (
	"embed"
	"io/fs"
)

//go:embed lifecycles/*.yaml events/*.json migrations readmodels openapi.yaml
var files embed.FS

// Lifecycles is the folder of lifecycle definition files.
func Lifecycles() fs.FS { return sub("lifecycles") }

// Events is the folder of event JSON Schemas, named <Type>.v<version>.json.
func Events() fs.FS { return sub("events") }

// Migrations is the folder of SQL migrations for one database dialect
// ("sqlite", and later "postgres").
func Migrations(dialect string) fs.FS { return sub("migrations/" + dialect) }

// ReadModels is the folder of DDL templates for the tables of one generation
// of a projection, for one database dialect: <projection>.up.sql creates
// them and <projection>.down.sql drops them, with {gen} standing for the
// generation number.
func ReadModels(dialect string) fs.FS { return sub("readmodels/" + dialect) }

// OpenAPI is the OpenAPI document of the HTTP API.
func OpenAPI() []byte {
	b, err := files.ReadFile("openapi.yaml")
	if err != nil {
		// The file is embedded at build time; its absence is a build defect.
		panic(err)
	}
	return b
}

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err)
	}
	return f
}
