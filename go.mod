module freelunch

go 1.26.0

require (
	github.com/hack-pad/safejs v0.1.0
	github.com/x448/float16 v0.8.4
	go.yaml.in/yaml/v3 v3.0.6
	golang.org/x/term v0.48.0
)

require golang.org/x/sys v0.50.0
