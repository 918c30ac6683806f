// Compiles (without running) each Groovy file given: a syntax error fails with its line and column.
import org.codehaus.groovy.control.CompilationFailedException
int failed = 0
args.each { f ->
  try {
    new GroovyShell().parse(new File(f))
    println "parsed ${f}"
  } catch (CompilationFailedException e) {
    failed++
    System.err.println("${f}: ${e.message}")
  }
}
System.exit(failed ? 1 : 0)
