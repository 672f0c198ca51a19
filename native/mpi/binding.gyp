{
  "targets": [
    {
      "target_name": "muse_mpi",
      "sources": ["muse_mpi.c"],
      "cflags": ["<!@(mpicc --showme:compile)", "-O2"],
      "libraries": ["<!@(mpicc --showme:link)"]
    }
  ]
}
