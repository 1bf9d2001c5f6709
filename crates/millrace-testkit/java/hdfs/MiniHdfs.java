import java.io.File;
import java.io.InputStream;
import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.hdfs.MiniDFSCluster;

/**
 * One namenode and one datanode on 127.0.0.1, for tests and benchmarks.
 *
 * Usage: MiniHdfs BASEDIR [NAMENODE_PORT [keep]]. Prints "HDFS_URL=hdfs://127.0.0.1:PORT"
 * once the datanode has registered, then runs until stdin closes (so a parent that dies
 * takes the cluster with it) or the process is signalled. With "keep" the cluster
 * starts on the data already in BASEDIR instead of formatting it, which is how a test
 * restarts the namenode and datanode with their files intact.
 */
public class MiniHdfs {
    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            System.err.println("usage: MiniHdfs BASEDIR [NAMENODE_PORT [keep]]");
            System.exit(2);
        }
        File base = new File(args[0]);
        int port = args.length > 1 ? Integer.parseInt(args[1]) : 0;
        boolean keep = args.length > 2 && args[2].equals("keep");
        Configuration conf = new Configuration();
        conf.set(MiniDFSCluster.HDFS_MINIDFS_BASEDIR, base.getAbsolutePath());
        conf.set("dfs.replication", "1");
        conf.set("dfs.permissions.enabled", "false");
        // hdfs-native and millrace dial datanodes by the address the namenode hands
        // out; keep every listener on loopback.
        conf.set("dfs.datanode.address", "127.0.0.1:0");
        conf.set("dfs.datanode.http.address", "127.0.0.1:0");
        conf.set("dfs.datanode.ipc.address", "127.0.0.1:0");
        conf.set("dfs.namenode.http-address", "127.0.0.1:0");
        conf.setBoolean("dfs.namenode.datanode.registration.ip-hostname-check", false);
        MiniDFSCluster cluster = new MiniDFSCluster.Builder(conf)
            .nameNodePort(port)
            .numDataNodes(1)
            .format(!keep)
            .build();
        cluster.waitActive();
        Runtime.getRuntime().addShutdownHook(new Thread(cluster::shutdown));
        System.out.println("HDFS_URL=hdfs://127.0.0.1:" + cluster.getNameNodePort());
        System.out.flush();
        InputStream in = System.in;
        byte[] buf = new byte[256];
        while (in.read(buf) >= 0) {
            // Anything written to stdin is ignored; only its end matters.
        }
        System.exit(0);
    }
}
