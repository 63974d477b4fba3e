// An Iceberg REST catalog server for tests: the REST adapter of Iceberg's own REST fixture (the jar the
// apache/iceberg-rest-fixture image runs, Maven Central's org.apache.iceberg:iceberg-open-api) in front of a JDBC
// catalog, bound to 127.0.0.1 only. The fixture's own main binds every interface and logs its catalog properties,
// secrets included; this launcher does neither.
//
// Run from source (JEP 330): java -cp iceberg-open-api-<version>.jar IcebergRestOnLoopback.java PORT
// The backend catalog's properties come from CATALOG_* variables, named as the fixture image names them
// (CATALOG_ prefix dropped, `__` -> `-`, `_` -> `.`, lower case), e.g. CATALOG_S3_PATH__STYLE__ACCESS=true.
// It prints "listening on PORT" once it accepts requests.

import java.util.HashMap;
import java.util.Locale;
import java.util.Map;
import org.apache.hadoop.conf.Configuration;
import org.apache.iceberg.CatalogUtil;
import org.apache.iceberg.catalog.Catalog;
import org.apache.iceberg.rest.RESTCatalogAdapter;
import org.apache.iceberg.rest.RESTCatalogServlet;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public class IcebergRestOnLoopback {
  public static void main(String[] args) throws Exception {
    Map<String, String> properties = new HashMap<>();
    System.getenv().forEach((name, value) -> {
      if (name.startsWith("CATALOG_")) {
        String key = name.substring("CATALOG_".length()).replace("__", "-").replace("_", ".").toLowerCase(Locale.ROOT);
        properties.put(key, value);
      }
    });
    properties.putIfAbsent("catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog");
    properties.putIfAbsent("jdbc.schema-version", "V1");
    Catalog catalog = CatalogUtil.buildIcebergCatalog("rest_backend", properties, new Configuration());

    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost("127.0.0.1");
    connector.setPort(Integer.parseInt(args[0]));
    server.addConnector(connector);
    ServletContextHandler context = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    context.addServlet(new ServletHolder(new RESTCatalogServlet(new RESTCatalogAdapter(catalog))), "/*");
    server.setHandler(context);
    server.start();
    System.out.println("listening on " + connector.getLocalPort());
    server.join();
  }
}
