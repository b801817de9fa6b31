package schema

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// Docs are doc comments by "Type" and "Type.Field" (Go names).
type Docs map[string]string

// ParseDocs reads the doc comments of the struct types and their fields
// in the Go files of dir (tests left out). A field without a comment above
// it takes the one after it on the same line.
func ParseDocs(dir string) (Docs, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		return nil, err
	}
	docs := Docs{}
	fset := token.NewFileSet()
	for _, path := range files {
		if strings.HasSuffix(path, "_test.go") {
			continue
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, err
		}
		f, err := parser.ParseFile(fset, path, src, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("schema: %w", err)
		}
		for _, decl := range f.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, spec := range gd.Specs {
				ts := spec.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				doc := ts.Doc
				if doc == nil && len(gd.Specs) == 1 {
					doc = gd.Doc
				}
				if t := text(doc); t != "" {
					docs[ts.Name.Name] = t
				}
				for _, fld := range st.Fields.List {
					c := fld.Doc
					if c == nil {
						c = fld.Comment
					}
					t := text(c)
					if t == "" {
						continue
					}
					for _, n := range fld.Names {
						docs[ts.Name.Name+"."+n.Name] = t
					}
				}
			}
		}
	}
	return docs, nil
}

// text joins a comment's lines into paragraphs.
func text(c *ast.CommentGroup) string {
	if c == nil {
		return ""
	}
	var paras []string
	for p := range strings.SplitSeq(strings.TrimSpace(c.Text()), "\n\n") {
		paras = append(paras, strings.Join(strings.Fields(p), " "))
	}
	return strings.Join(paras, "\n\n")
}

// field returns the description of field goName (yaml key) of typ. The
// comment speaks of the Go name ("Listen is a literal ip:port"); the
// reader of a config file knows the key ("`listen` is ...").
func (d Docs) field(typ, goName, key string) string {
	t := d[typ+"."+goName]
	if t == "" {
		return ""
	}
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(goName) + `\b`)
	t = re.ReplaceAllLiteralString(t, "`"+key+"`")
	return strings.TrimSpace(goNoteRE.ReplaceAllString(t, ""))
}

// goNoteRE matches the notes for Go readers about a field's type ("A
// pointer so that 0 can be given."), which mean nothing in a YAML file.
var goNoteRE = regexp.MustCompile(`\s*A pointer so that [^.]*\.`)
