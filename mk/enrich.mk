# The project's Flink SQL functions are built by `make jars` too (jvm/pom.xml): rebuild when their sources change.
$(JARS)/.resolved: $(shell find jvm/src -name '*.java' 2>/dev/null)
