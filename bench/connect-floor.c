// connect-floor: the kernel cost of N non-blocking loopback connects to a closed port
// (socket, connect, SO_ERROR, close) with nothing else; the floor for connect mode.
// Build: gcc -O2 -o connect-floor bench/connect-floor.c. Run: connect-floor 163840
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>
#include <poll.h>
int main(int argc, char** argv){
  long n = atol(argv[1]); int refused=0, inprog=0, other=0;
  unsigned base = ntohl(inet_addr("127.78.0.0"));
  for(long i=0;i<n;i++){
    int s = socket(AF_INET, SOCK_STREAM|SOCK_NONBLOCK, 0);
    struct sockaddr_in a = {0}; a.sin_family=AF_INET; a.sin_port=htons(9); a.sin_addr.s_addr=htonl(base + (i % 16384));
    int r = connect(s,(struct sockaddr*)&a,sizeof a);
    if(r<0 && errno==ECONNREFUSED) refused++;
    else if(r<0 && errno==EINPROGRESS){ inprog++; int e=0; socklen_t l=sizeof e; getsockopt(s,SOL_SOCKET,SO_ERROR,&e,&l); if(e==ECONNREFUSED) refused++; }
    else other++;
    close(s);
  }
  printf("refused %d inprogress %d other %d\n", refused, inprog, other);
}
