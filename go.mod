module freelunch

go 1.26
