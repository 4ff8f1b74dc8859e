// What DBeaver, Metabase, Tableau and DataGrip do first through pgjdbc, against `wh serve`.
// Prints one line per step: "<step>\t<result>" or "<step>\tERROR <exception>"; the pytest in
// test_jdbc.py reads them. Usage: java -cp postgresql.jar JdbcProbe.java <port>
import java.sql.*;
import java.util.*;

public class JdbcProbe {
    interface Step { String run() throws Exception; }

    static void step(String name, Step body) {
        String out;
        try {
            out = body.run();
        } catch (Exception e) {
            out = "ERROR " + e.getClass().getSimpleName() + ": " + e.getMessage().replace('\n', ' ');
        }
        System.out.println(name + "\t" + out);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/prod?user=wh&connectTimeout=10";
        try (Connection con = DriverManager.getConnection(url)) {
            DatabaseMetaData meta = con.getMetaData();
            step("product", () -> meta.getDatabaseProductName() + " " + meta.getDatabaseProductVersion());
            step("schemas", () -> {
                List<String> names = new ArrayList<>();
                try (ResultSet rs = meta.getSchemas()) { while (rs.next()) names.add(rs.getString("TABLE_SCHEM")); }
                return String.join(",", names);
            });
            step("tables", () -> {
                List<String> names = new ArrayList<>();
                try (ResultSet rs = meta.getTables(null, "forecast", "%", new String[]{"TABLE", "VIEW"})) {
                    while (rs.next()) names.add(rs.getString("TABLE_NAME") + ":" + rs.getString("TABLE_TYPE"));
                }
                return String.join(",", names);
            });
            step("columns", () -> {
                List<String> cols = new ArrayList<>();
                try (ResultSet rs = meta.getColumns(null, "forecast", "demand_forecast", "%")) {
                    while (rs.next()) cols.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME") + ":" + rs.getInt("DATA_TYPE"));
                }
                return String.join(",", cols);
            });
            step("primary_keys", () -> {
                int n = 0;
                try (ResultSet rs = meta.getPrimaryKeys(null, "forecast", "demand_forecast")) { while (rs.next()) n++; }
                return "rows=" + n;
            });
            step("index_info", () -> {
                int n = 0;
                try (ResultSet rs = meta.getIndexInfo(null, "forecast", "demand_forecast", false, true)) { while (rs.next()) n++; }
                return "rows=" + n;
            });
            for (String[] call : new String[][]{{"catalogs"}, {"type_info"}, {"functions"}, {"procedures"}, {"imported_keys"}, {"exported_keys"}, {"table_types"}}) {
                step(call[0], () -> {
                    ResultSet rs;
                    switch (call[0]) {
                        case "catalogs": rs = meta.getCatalogs(); break;
                        case "type_info": rs = meta.getTypeInfo(); break;
                        case "functions": rs = meta.getFunctions(null, "forecast", "%"); break;
                        case "procedures": rs = meta.getProcedures(null, "forecast", "%"); break;
                        case "imported_keys": rs = meta.getImportedKeys(null, "forecast", "demand_forecast"); break;
                        case "exported_keys": rs = meta.getExportedKeys(null, "forecast", "demand_forecast"); break;
                        default: rs = meta.getTableTypes();
                    }
                    int n = 0;
                    try (ResultSet r = rs) { while (r.next()) n++; }
                    return "rows=" + n;
                });
            }
            step("count", () -> {
                try (Statement st = con.createStatement(); ResultSet rs = st.executeQuery("select count(*) from forecast.demand_forecast_history")) {
                    rs.next();
                    return "rows=" + rs.getLong(1);
                }
            });
            step("fetch_size_paging", () -> {
                con.setAutoCommit(false);
                long n = 0;
                try (Statement st = con.createStatement()) {
                    st.setFetchSize(7);
                    try (ResultSet rs = st.executeQuery("select product_id, forecast_date, units_forecast from forecast.demand_forecast_history")) {
                        while (rs.next()) n++;
                    }
                }
                con.commit();
                con.setAutoCommit(true);
                return "rows=" + n;
            });
            step("prepared_dates", () -> {
                List<String> out = new ArrayList<>();
                try (PreparedStatement ps = con.prepareStatement(
                        "select count(*) as n, min(forecast_date) as first from forecast.demand_forecast where forecast_date >= ? and cutoff_date < ?")) {
                    for (int i = 0; i < 10; i++) {
                        ps.setDate(1, java.sql.Date.valueOf("2000-01-01"));
                        ps.setTimestamp(2, java.sql.Timestamp.valueOf("2100-01-01 00:00:00"));
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            out.add(rs.getLong("n") + "@" + rs.getDate("first"));
                        }
                    }
                }
                return String.join(",", new LinkedHashSet<>(out)) + " runs=" + out.size();
            });
            step("binary_types", () -> {
                List<String> out = new ArrayList<>();
                String sql = "select 1::smallint as a, 2::integer as b, 3::bigint as c, 1.5::real as d, 2.25::double precision as e, "
                    + "12.34::numeric(10,2) as f, true as g, date '2024-02-29' as h, timestamp '2024-02-29 13:14:15.123456' as i, 'x' as j";
                try (PreparedStatement ps = con.prepareStatement(sql)) {
                    for (int i = 0; i < 8; i++) {
                        try (ResultSet rs = ps.executeQuery()) {
                            rs.next();
                            out.add(rs.getShort(1) + "|" + rs.getInt(2) + "|" + rs.getLong(3) + "|" + rs.getFloat(4) + "|" + rs.getDouble(5)
                                + "|" + rs.getBigDecimal(6) + "|" + rs.getBoolean(7) + "|" + rs.getDate(8) + "|" + rs.getTimestamp(9) + "|" + rs.getString(10));
                        }
                    }
                }
                return String.join(",", new LinkedHashSet<>(out)) + " runs=" + out.size();
            });
            step("current", () -> {
                try (Statement st = con.createStatement(); ResultSet rs = st.executeQuery("select current_database(), current_user, current_schema()")) {
                    rs.next();
                    return rs.getString(1) + "," + rs.getString(2) + "," + rs.getString(3);
                }
            });
        }
    }
}
