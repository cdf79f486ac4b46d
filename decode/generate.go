package decode

//go:generate go run ./internal/gencatalog -in ../docs/pop3-rules.md -out catalog_gen.go
