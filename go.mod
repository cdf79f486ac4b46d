module github.com/popscope/popscope

go 1.26
