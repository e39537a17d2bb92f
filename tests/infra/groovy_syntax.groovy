// Syntax check of a Jenkinsfile with plain Groovy: compile up to the CONVERSION phase (parse
// and AST), before class resolution, so classes that only exist on a Jenkins controller
// (pipeline steps, FlowInterruptedException) do not matter. Declarative semantics are not
// checked here (npm-groovy-lint and the tests' structure checks cover part of that).
// Usage: groovy groovy_syntax.groovy FILE...
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.Phases

int failed = 0
args.each { String path ->
    def unit = new CompilationUnit()
    unit.addSource(new File(path))
    try {
        unit.compile(Phases.CONVERSION)
        println "ok ${path}"
    } catch (CompilationFailedException e) {
        failed++
        System.err.println(e.message)
    }
}
System.exit(failed ? 1 : 0)
